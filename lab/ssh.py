"""SSH transport (paramiko) for the hosts of a real lab, and the docker SDK over that same
connection (`docker system dial-stdio` on the remote, as `docker -H ssh://…` does).

One SSH connection per host per process: connections are cached by (pid, address, port, user),
so pytest-xdist workers and forked children never share a paramiko Transport, and a dead one is
replaced on next use. Every command is a channel on that connection; the docker client's HTTP
connections are channels on it too.

Access settings come from the inventory (`lab.inventory.SshAccess`, read by duck typing here):
user, port, key_file, known_hosts, host_key_policy ("verify" | "trust-on-first-use"), sudo,
connect_timeout, command_timeout, password, sudo_password. Nothing implicit is read: not
~/.ssh/config, not the system known_hosts; paramiko's default keys and agent only when no
key_file is given.

Every way a connection can fail is one `SshError` whose message names the host and says what to
fix; no secret (password, key) ever goes into a message or a log line.

Timeouts: access.connect_timeout bounds the TCP connect, the SSH banner, the key exchange and
authentication (each), and opening a channel; access.command_timeout is the default for `run`.
A command that outlives its timeout raises CommandTimeout and its channel is closed: sshd then
closes the command's pipes, so it sees EOF on stdin and SIGPIPE on its next write, but no
signal (there is no pty, hence no SIGHUP): a command that neither reads nor writes (`sleep`)
runs on to its end.

sudo: `sudo -n -- ARGV`; with sudo_password, `sudo -S -k -p '' -- ARGV` with the password
written to stdin before the input (-k: sudo would otherwise skip reading it while a credential
is cached, and the command would get it). Whether sudo wants a password at all is asked once
per connection (`sudo -n true`); where it does not (NOPASSWD, root) the password is never sent.
A command killed by a signal has returncode -1 (paramiko does not read exit-signal).

What the remote needs: a POSIX login shell for the user (argv is quoted with shlex.join), `cat`
for read_file, `sudo` when access.sudo is set, and the docker CLI (any version with
`docker system dial-stdio`, i.e. 18.09+) for `docker_client`.
"""
from __future__ import annotations

import atexit
import errno
import fcntl
import logging
import os
import select
import shlex
import socket
import subprocess
import threading
import time
from typing import Sequence

import docker
import paramiko
from docker.constants import MINIMUM_DOCKER_API_VERSION
from docker.transport.sshconn import SSHConnection, SSHConnectionPool, SSHHTTPAdapter

from .docker_api import ERRORS as DOCKER_ERRORS
from .errors import LabError
from .proc import Result
from .transport import CommandTimeout, Host

log = logging.getLogger(__name__)

# paramiko's own log (its transport thread logs tracebacks at ERROR) goes to a child of ours,
# quiet unless someone turns it up: every failure reaches the caller as one SshError instead.
PARAMIKO_LOG = f"{__name__}.paramiko"
logging.getLogger(PARAMIKO_LOG).setLevel(logging.CRITICAL)

_SUDO_PASSWORD_ERRORS = ("sudo: a password is required",)
_SUDO_REJECTED = ("incorrect password attempt", "no password was provided")


class SshError(LabError):
    """An SSH host that cannot be reached or used; the message says which and what to fix."""


class _HostKeyUnknown(Exception):
    def __init__(self, name: str, key: paramiko.PKey):
        super().__init__(name)
        self.name, self.key = name, key


class _KnownHostsUnwritable(Exception):
    def __init__(self, path: str, exc: OSError):
        super().__init__(path)
        self.path, self.strerror = path, exc.strerror


class _HostKeyChanged(Exception):
    def __init__(self, name: str, key: paramiko.PKey):
        super().__init__(name)
        self.name, self.key = name, key


def known_hosts_name(address: str, port: int) -> str:
    """The name a known_hosts line gives a host: `addr`, or `[addr]:port` off port 22."""
    return address if port == 22 else f"[{address}]:{port}"


def _matching_lines(path: str, name: str) -> list[int]:
    """Line numbers of `path` whose host field names `name` (plain or hashed)."""
    found = []
    try:
        with open(path, errors="replace") as f:
            lines = list(f)
    except OSError:
        return found
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        field = line.split()[0]
        if field.startswith("@") and len(line.split()) > 1:   # @cert-authority / @revoked
            field = line.split()[1]
        for h in field.split(","):
            if h == name or (h.startswith("|1|")
                             and paramiko.HostKeys.hash_host(name, h) == h):
                found.append(lineno)
                break
    return found


class _RejectUnknown(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client, hostname, key):
        raise _HostKeyUnknown(hostname, key)


class _TrustOnFirstUse(paramiko.MissingHostKeyPolicy):
    """Accept an unknown host's key and append it to the known_hosts file (0600 if created).

    The file is locked and read again first, so two processes meeting the same new host agree on
    one key: if another one wrote a different key meanwhile, that is a CHANGED key, refused."""

    def __init__(self, path: str):
        self.path = path

    def missing_host_key(self, client, hostname, key):
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise _KnownHostsUnwritable(self.path, exc) from None
        with os.fdopen(fd, "r+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            now = paramiko.HostKeys()
            now.load(self.path)
            known = now.lookup(hostname)
            if known is not None:
                if known.get(key.get_name()) != key:
                    raise _HostKeyChanged(hostname, key)
            else:
                f.seek(0, os.SEEK_END)
                f.write(paramiko.hostkeys.HostKeyEntry([hostname], key).to_line())
                f.flush()
                log.info("trust-on-first-use: added %s %s %s to %s", hostname, key.get_name(),
                         key.fingerprint, self.path)
        client.get_host_keys().add(hostname, key.get_name(), key)


class _Slot:
    """One cached connection (and what we learnt about the host over it)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.client: paramiko.SSHClient | None = None
        self.sudo_needs_password: bool | None = None
        self.docker_api_version: str | None = None

    def alive(self) -> bool:
        t = self.client.get_transport() if self.client is not None else None
        return t is not None and t.is_active()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None
        self.sudo_needs_password = self.docker_api_version = None


_LOCK = threading.Lock()
_SLOTS: dict[tuple[int, str, int, str], _Slot] = {}


def _after_fork_in_child() -> None:
    # a lock held by another thread at fork time would stay held forever in the child; the
    # parent's connections are simply forgotten (their keys carry the parent's pid anyway)
    global _LOCK
    _LOCK = threading.Lock()
    _SLOTS.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def close_all() -> None:
    """Close every SSH connection this process opened."""
    with _LOCK:
        mine = [k for k in _SLOTS if k[0] == os.getpid()]
        slots = [_SLOTS.pop(k) for k in mine]
    for slot in slots:
        with slot.lock:
            slot.close()


atexit.register(close_all)


class SshHost(Host):
    """A host reached over SSH with the inventory's access settings (duck-typed SshAccess)."""

    def __init__(self, name: str, address: str, access) -> None:
        self.name, self.address, self.access = name, address, access

    def __repr__(self) -> str:
        return f"SshHost({self.name!r}, {self.where})"

    @property
    def where(self) -> str:
        return f"{self.access.user}@{self.address}:{self.access.port}"

    def _error(self, what: str) -> SshError:
        return SshError(f"ssh {self.name} ({self.where}): {what}")

    # -- connection ---------------------------------------------------------------------------
    def _key(self) -> tuple[int, str, int, str]:
        return os.getpid(), self.address, int(self.access.port), self.access.user

    def _slot(self) -> _Slot:
        with _LOCK:
            return _SLOTS.setdefault(self._key(), _Slot())

    def client(self) -> paramiko.SSHClient:
        """The connected paramiko client of this process for this host (connects if needed)."""
        slot = self._slot()
        with slot.lock:
            if not slot.alive():
                if slot.client is not None:
                    log.info("ssh %s: connection lost, reconnecting", self.name)
                slot.close()
                slot.client = self._connect()
            return slot.client

    def transport(self) -> paramiko.Transport:
        return self.client().get_transport()

    def close(self) -> None:
        """Close this process's connection to the host (the next command reconnects)."""
        with _LOCK:
            slot = _SLOTS.pop(self._key(), None)
        if slot is not None:
            with slot.lock:
                slot.close()

    def _load_key(self) -> paramiko.PKey | None:
        path = self.access.key_file
        if not path:
            return None
        path = os.path.expanduser(path)
        if not os.path.exists(path):
            raise self._error(f"key file {path} does not exist (check key_file in the inventory)")
        try:
            return paramiko.PKey.from_path(path)
        except (paramiko.PasswordRequiredException, TypeError):   # TypeError: no password given
            raise self._error(f"key file {path} is passphrase-protected: use a key without a "
                              "passphrase, or load it into ssh-agent and leave key_file unset"
                              ) from None
        except OSError as exc:
            raise self._error(f"key file {path} is not readable: {exc.strerror}") from None
        except (paramiko.SSHException, ValueError) as exc:
            raise self._error(f"key file {path} is not a private key paramiko can load "
                              f"({type(exc).__name__})") from None

    def _connect(self) -> paramiko.SSHClient:
        a = self.access
        port, timeout = int(a.port), float(a.connect_timeout)
        if self.address.rstrip(".").lower().rpartition(".")[2] == "invalid":
            # RFC 6761 §6.4: ".invalid" never resolves; answer at once, without asking DNS
            raise self._error("name does not resolve (check the inventory address / DNS)")
        pkey = self._load_key()
        client = paramiko.SSHClient()
        client.set_log_channel(PARAMIKO_LOG)
        known_hosts = os.path.expanduser(a.known_hosts)
        if os.path.exists(known_hosts):
            try:
                client.load_host_keys(known_hosts)
            except OSError as exc:
                raise self._error(f"known_hosts file {known_hosts} is not readable: "
                                  f"{exc.strerror}") from None
            except paramiko.hostkeys.InvalidHostKey as exc:
                raise self._error(f"known_hosts file {known_hosts} has a line that is not a "
                                  f"valid host key: {exc.line[:60]!r}") from None
        if a.host_key_policy == "trust-on-first-use":
            client.set_missing_host_key_policy(_TrustOnFirstUse(known_hosts))
        elif a.host_key_policy == "verify":
            client.set_missing_host_key_policy(_RejectUnknown())
        else:
            raise self._error(f"host_key_policy {a.host_key_policy!r} is not one of "
                              "verify, trust-on-first-use")
        t0 = time.monotonic()
        try:
            client.connect(self.address, port, username=a.user, password=a.password, pkey=pkey,
                           timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                           channel_timeout=timeout, allow_agent=pkey is None,
                           look_for_keys=pkey is None)
        except (OSError, EOFError, paramiko.SSHException, _HostKeyUnknown, _HostKeyChanged,
                _KnownHostsUnwritable) as exc:
            client.close()
            raise self._connect_error(exc, known_hosts, time.monotonic() - t0) from None
        except BaseException:
            client.close()
            raise
        log.debug("ssh %s: connected to %s in %.3fs", self.name, self.where,
                  time.monotonic() - t0)
        return client

    def _connect_error(self, exc: BaseException, known_hosts: str, took: float) -> SshError:
        a = self.access
        port, timeout = int(a.port), float(a.connect_timeout)
        name = known_hosts_name(self.address, port)
        if isinstance(exc, socket.gaierror):
            return self._error("name does not resolve (check the inventory address / DNS)")
        if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
            codes = {e.errno for e in exc.errors.values()}
            if codes == {errno.ECONNREFUSED}:
                return self._error("connection refused (is sshd running, is the port right?)")
            return self._error("no route to host (is the address right, is the host up?)")
        if isinstance(exc, socket.timeout):
            return self._error(f"timed out connecting after {timeout:g}s (host down or filtered)")
        if isinstance(exc, _KnownHostsUnwritable):
            return self._error(f"trust-on-first-use cannot record the host key in {exc.path}: "
                               f"{exc.strerror}")
        if isinstance(exc, _HostKeyUnknown):
            missing = "" if os.path.exists(known_hosts) else " (the file does not exist)"
            return self._error(
                f"host key unknown: {name} is not in {known_hosts}{missing}; the server offered "
                f"{exc.key.get_name()} {exc.key.fingerprint}. Verify it and add it, e.g. "
                f"`ssh-keyscan -p {port} {self.address} >> {known_hosts}`, or set "
                "host_key_policy: trust-on-first-use")
        if isinstance(exc, (paramiko.BadHostKeyException, _HostKeyChanged)):
            key = exc.key
            lines = _matching_lines(known_hosts, name)
            where = (f"{known_hosts} line{'s' if len(lines) > 1 else ''} "
                     f"{', '.join(map(str, lines))}" if lines else known_hosts)
            return self._error(
                f"host key CHANGED: the server offered {key.get_name()} {key.fingerprint}, which "
                f"is not the key {where} holds for {name}: possible man-in-the-middle attack. "
                f"If the host was really reinstalled, verify the new key, then remove the old "
                f"one (`ssh-keygen -R '{name}' -f {known_hosts}`) and add the new one")
        if isinstance(exc, paramiko.AuthenticationException):
            if "timeout" in str(exc).lower():
                return self._error(f"authentication timed out after {timeout:g}s")
            hint = (f"the server accepts only {', '.join(exc.allowed_types)}"
                    if isinstance(exc, paramiko.BadAuthenticationType) else
                    f"is the public key in ~{a.user}/.ssh/authorized_keys there?")
            return self._error(f"authentication failed as user {a.user} with "
                               f"{self._credentials()} ({hint})")
        text = str(exc)
        # paramiko stops waiting for banner + key exchange after `timeout` and then finds
        # "No existing session"
        if ("banner" in text or text == "No existing session") and took >= timeout * 0.9:
            return self._error(f"connected, but no SSH handshake within {timeout:g}s (is port "
                               f"{port} an SSH server? is sshd overloaded?)")
        if "banner" in text:
            return self._error(f"the server closed the connection before its SSH banner (is "
                               f"port {port} an SSH server? sshd MaxStartups, TCP wrappers?)")
        if text.startswith("Indecipherable protocol version"):
            return self._error(f"port {port} does not speak SSH (is the port right?)")
        if isinstance(exc, OSError) and exc.strerror:
            return self._error(f"cannot connect: {exc.strerror}")
        return self._error(f"SSH negotiation failed: {type(exc).__name__}"
                           + (f": {text}" if text else ""))

    def _credentials(self) -> str:
        a = self.access
        what = (f"key file {os.path.expanduser(a.key_file)}" if a.key_file
                else "the default keys (~/.ssh/id_*) and ssh-agent")
        return what + (" and the password" if a.password else "")

    # -- commands -----------------------------------------------------------------------------
    def _open_channel(self) -> paramiko.Channel:
        for attempt in (1, 2):
            client = self.client()
            try:
                return client.get_transport().open_session(
                    timeout=float(self.access.connect_timeout))
            except paramiko.ChannelException as exc:
                raise self._error(f"sshd refused a new session ({exc.text}; MaxSessions in its "
                                  "sshd_config limits sessions per connection, default 10)"
                                  ) from None
            except (paramiko.SSHException, OSError, EOFError, AttributeError) as exc:
                slot = self._slot()
                if attempt == 2 or slot.alive():
                    raise self._error(f"cannot open a session: {exc or type(exc).__name__}"
                                      ) from None
        raise AssertionError("unreachable")

    def _sudo_needs_password(self) -> bool:
        """Asked once per connection: with sudo_password set, does sudo really want it?

        Under NOPASSWD (or for root) sudo never reads the password, and the command would get
        it on its stdin instead: then the commands run with `sudo -n`."""
        slot = self._slot()
        if slot.sudo_needs_password is None:
            argv = ["sudo", "-n", "true"]
            cp = self._exec(shlex.join(argv), b"", float(self.access.command_timeout), argv)
            self._check_sudo(cp, password=False, ignore_password_required=True)
            slot.sudo_needs_password = cp.returncode != 0
        return slot.sudo_needs_password

    def command(self, argv: Sequence[str]) -> tuple[str, bytes]:
        """The remote command line for argv, and what must precede stdin (the sudo password)."""
        if not argv:
            raise ValueError("empty argv")
        line = shlex.join(argv)
        if not self.access.sudo:
            return line, b""
        if self.access.sudo_password and self._sudo_needs_password():
            # -k: never use a cached credential, so sudo always reads the password we send
            return f"sudo -S -k -p '' -- {line}", self.access.sudo_password.encode() + b"\n"
        return f"sudo -n -- {line}", b""

    def _check_sudo(self, cp: subprocess.CompletedProcess, password: bool,
                    ignore_password_required: bool = False) -> None:
        if cp.returncode == 0:
            return
        err = cp.stderr.decode(errors="replace")
        if cp.returncode == 127 and "sudo" in err and "not found" in err:
            raise self._error("sudo is not installed on the host (access.sudo needs it)")
        if not ignore_password_required and any(err.startswith(m) for m in _SUDO_PASSWORD_ERRORS):
            raise self._error(f"sudo -n: a password is required for {self.access.user}: set "
                              f"sudo_password in the inventory, or allow {self.access.user} "
                              "NOPASSWD in sudoers")
        sudo_lines = [ln for ln in err.splitlines() if ln.startswith("sudo:")]
        if password and any(m in ln for m in _SUDO_REJECTED for ln in sudo_lines):
            raise self._error(f"sudo rejected the sudo_password for {self.access.user}")

    def _run_bytes(self, argv: Sequence[str], timeout: float,
                   input: bytes | None = None) -> subprocess.CompletedProcess:
        argv = list(argv)
        line, prefix = self.command(argv)
        cp = self._exec(line, prefix + (input or b""), timeout, argv)
        if self.access.sudo:
            self._check_sudo(cp, password=bool(prefix))
        return cp

    def _exec(self, line: str, stdin: bytes, timeout: float,
              argv: Sequence[str]) -> subprocess.CompletedProcess:
        """Run one command line on a new channel; stdin is sent then closed. On timeout the
        channel is closed (see the module doc for what the remote command then sees)."""
        deadline = time.monotonic() + timeout
        chan = self._open_channel()
        out, err = bytearray(), bytearray()
        try:
            chan.exec_command(line)
            if stdin:
                threading.Thread(target=_feed, args=(chan, stdin), daemon=True,
                                 name=f"ssh-stdin-{self.name}").start()
            else:
                chan.shutdown_write()
            while True:
                while chan.recv_ready():
                    out += chan.recv(65536)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                if chan.eof_received or chan.closed:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._timeout(argv, timeout)
                select.select([chan], [], [], min(left, 1.0))
            left = deadline - time.monotonic()
            if not chan.status_event.wait(max(left, 0)):
                raise self._timeout(argv, timeout)
            # exit-signal (killed by a signal) is not parsed by paramiko: it reads as -1
            rc = chan.exit_status
            while chan.recv_ready():
                out += chan.recv(65536)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
            if rc == -1 and not chan.get_transport().is_active():
                raise EOFError("the SSH connection closed")
        except (paramiko.SSHException, OSError, EOFError) as exc:
            # the dead transport is replaced on next use (SshHost.client)
            raise self._error(f"connection lost while running `{shlex.join(argv)}`: "
                              f"{exc or type(exc).__name__}") from None
        finally:
            chan.close()
        return subprocess.CompletedProcess(list(argv), rc, bytes(out), bytes(err))

    def _timeout(self, argv: Sequence[str], timeout: float) -> CommandTimeout:
        return CommandTimeout(f"ssh {self.name} ({self.where}): `{shlex.join(argv)}` timed out "
                              f"after {timeout:g}s (channel closed; the remote command may still "
                              "be running if it neither reads nor writes)")

    def run(self, argv: Sequence[str], timeout: float | None = None,
            input: str | None = None) -> Result:
        """Run argv on the host (sudo'ed if access.sudo); timeout defaults to
        access.command_timeout."""
        cp = self._run_bytes(argv, float(self.access.command_timeout if timeout is None
                                         else timeout),
                             input.encode() if input is not None else None)
        return Result(cp.returncode, cp.stdout.decode(errors="replace"),
                      cp.stderr.decode(errors="replace"))


def _feed(chan: paramiko.Channel, data: bytes) -> None:
    """Send stdin in its own thread, so a command that writes much before it reads cannot
    deadlock us against the SSH window."""
    try:
        chan.sendall(data)
        chan.shutdown_write()
    except (OSError, EOFError, paramiko.SSHException):
        pass   # the channel closed (command exited or timed out); the reader reports it


# -- docker over ssh -------------------------------------------------------------------------

DIAL_STDIO = ["docker", "system", "dial-stdio"]


class _DialStdioConnection(SSHConnection):
    """One HTTP connection = one channel running `[sudo -n] docker system dial-stdio`."""

    def __init__(self, host: SshHost, timeout: float):
        super().__init__(ssh_transport=None, timeout=timeout, host=None)
        self.ssh = host

    def connect(self):
        line, prefix = self.ssh.command(DIAL_STDIO)
        if prefix:    # dial-stdio's stdin is the HTTP stream: no password can go in front
            line = f"sudo -n -- {shlex.join(DIAL_STDIO)}"
        chan = self.ssh._open_channel()
        chan.settimeout(self.timeout)
        try:
            chan.exec_command(line)
        except paramiko.SSHException as exc:   # as an OSError, urllib3 and requests wrap it
            chan.close()
            raise ConnectionError(f"ssh {self.ssh.name}: cannot run {line}: {exc}") from None
        self.sock = chan


class _DialStdioPool(SSHConnectionPool):
    """At most `maxsize` dial-stdio sessions; a request waits (up to the client timeout) for a
    free one rather than opening more, since sshd's MaxSessions (default 10) bounds the
    sessions of one connection."""

    def __init__(self, host: SshHost, timeout: float, maxsize: int):
        super().__init__(ssh_client=None, timeout=timeout, maxsize=maxsize, host=None)
        self.ssh = host
        self.block = True

    def _get_conn(self, timeout=None):
        return super()._get_conn(self.timeout if timeout is None else timeout)

    def _new_conn(self):
        return _DialStdioConnection(self.ssh, self.timeout)


class _SshHostAdapter(SSHHTTPAdapter):
    """The SDK's ssh adapter on an SshHost's connection: it builds no paramiko client of its
    own, so ~/.ssh/config and the system known_hosts play no part, and closing it leaves the
    shared connection open. One pool for every URL (the SDK keeps one per URL, which would
    hold a session per endpoint ever called)."""

    def __init__(self, host: SshHost, timeout: float, max_sessions: int):
        self.ssh = host
        super().__init__(f"ssh://{host.where}", timeout=timeout, pool_connections=1,
                         max_pool_size=max_sessions)

    def _create_paramiko_client(self, base_url):
        self.ssh_client = None    # the SshHost owns the connection (and reconnects it)

    def _connect(self):
        pass

    def get_connection(self, url, proxies=None):
        with self.pools.lock:
            pool = self.pools.get("dial-stdio")
            if pool is None:
                pool = _DialStdioPool(self.ssh, self.timeout, self.max_pool_size)
                self.pools["dial-stdio"] = pool
        return pool


class _SshAPIClient(docker.APIClient):
    def __init__(self, host: SshHost, timeout: float, version: str | None, max_sessions: int):
        # use_ssh_client=True: the SDK's own adapter then neither connects nor runs anything
        # while we replace it; a given version skips its round trip until ours is mounted
        super().__init__(base_url=f"ssh://{host.where}", timeout=timeout, use_ssh_client=True,
                         version=version or MINIMUM_DOCKER_API_VERSION)
        self._custom_adapter = _SshHostAdapter(host, timeout, max_sessions)
        self.mount("http+docker://ssh", self._custom_adapter)
        if version is None:
            self._version = self._retrieve_server_version()


class _SshDockerClient(docker.DockerClient):
    def __init__(self, api: docker.APIClient, host: SshHost):
        self.api = api
        self.ssh_host = host


DOCKER_SESSIONS = 4   # dial-stdio sessions one docker client keeps at most (MaxSessions: 10)


def docker_client(host: SshHost, timeout: float = 60,
                  max_sessions: int = DOCKER_SESSIONS) -> docker.DockerClient:
    """A docker SDK client whose every HTTP connection is `docker system dial-stdio` on the
    host's SSH connection (with `sudo -n` when access.sudo). The API version is negotiated with
    the first client of a connection (one /version round trip) and reused after. At most
    `max_sessions` requests run at once (more wait); commands and every docker client of the
    host share sshd's MaxSessions (10 by default) sessions per connection.

    SshError when ssh fails, or when docker cannot be reached, saying why (no docker CLI on the
    host, daemon not running, socket permissions)."""
    host.client()    # ssh errors first, as themselves
    slot = host._slot()
    try:
        api = _SshAPIClient(host, timeout, slot.docker_api_version, max_sessions)
    except DOCKER_ERRORS as exc:
        raise docker_error(host, exc) from None
    slot.docker_api_version = api.api_version
    return _SshDockerClient(api, host)


def docker_ping(host: SshHost, client: docker.DockerClient | None = None) -> None:
    """Ping dockerd over ssh; SshError saying what to fix when it does not answer."""
    own = client is None
    c = client or docker_client(host)
    try:
        c.ping()
    except DOCKER_ERRORS as exc:
        raise docker_error(host, exc) from None
    finally:
        if own:
            c.close()


def docker_error(host: SshHost, exc: BaseException) -> SshError:
    """Why docker over ssh failed, found out with plain commands on the same host."""
    if isinstance(exc, SshError):
        return exc
    how = "sudo -n docker system dial-stdio" if host.access.sudo else "docker system dial-stdio"
    try:
        which = host.run(["sh", "-c", "command -v docker"], timeout=30)
        if not which.ok:
            return host._error(f"docker is not reachable: no docker CLI on the host's PATH "
                               f"(`{how}` needs it: install docker.io or docker-ce-cli there)")
        ver = host.run(["docker", "version", "--format", "{{.Server.APIVersion}}"], timeout=30)
    except SshError as err:
        return err
    except CommandTimeout:
        return host._error("docker is not reachable, and `docker version` there did not answer "
                           "within 30s (is dockerd hung?)")
    detail = (ver.stderr.strip().splitlines() or [""])[-1]
    if not ver.ok:
        if "permission denied" in detail.lower():
            hint = "add the user to the docker group, or set sudo: true"
        elif host.access.sudo:
            hint = ("is dockerd running there? note that sudo's env_reset drops DOCKER_HOST "
                    "unless sudoers env_keep has it")
        else:
            hint = ("is dockerd running there, and is DOCKER_HOST / its socket right for ssh "
                    "sessions?")
        return host._error(f"docker daemon not reachable through `{how}`: {detail} ({hint})")
    return host._error(f"docker over ssh failed although `docker version` works there (is its "
                       f"docker CLI 18.09 or newer, for `{how}`?): "
                       f"{type(exc).__name__}: {str(exc)[:300]}")
