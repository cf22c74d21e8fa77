"""A real, private OpenSSH server for tests of the SSH transport (lab/ssh.py).

Debian's /usr/sbin/sshd in the foreground (-D -e), on 127.0.0.1 with a free port, with a
throw-away host key, user keys, authorized_keys and known_hosts, all in a temporary directory.
Only loopback traffic; every sshd is ours and is killed by PID at the end, and the directory is
removed. Needs root (privilege separation, and logging in as root with a key).

`sshd_factory.start(extra)` starts one more server with extra sshd_config lines (e.g.
`SetEnv DOCKER_HOST=…`); `sshd` is a plain one shared by a whole session.
"""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

import pytest

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = "/run/sshd"    # Debian's sshd refuses to start without it


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: str, comment: str) -> str:
    """A passphrase-less ed25519 key pair at path (+ .pub); returns the public key line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
                   check=True, capture_output=True, timeout=30)
    with open(path + ".pub") as f:
        return f.read().strip()


@dataclass
class Sshd:
    dir: str
    port: int
    known_hosts: str            # `[127.0.0.1]:PORT <host key>`
    proc: subprocess.Popen
    log_path: str
    address: str = "127.0.0.1"

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()


@dataclass
class SshdFactory:
    dir: str
    host_key: str = ""          # private host key file; host_pub is its public line
    host_pub: str = ""
    other_host_pub: str = ""    # a key no server uses (for "changed host key")
    user_key: str = ""          # authorized for every user
    other_user_key: str = ""    # not authorized anywhere (for "wrong key")
    authorized_keys: str = ""
    servers: list[Sshd] = field(default_factory=list)

    def setup(self) -> None:
        os.chmod(self.dir, 0o755)   # a non-root user's sshd session reads authorized_keys here
        self.host_key = os.path.join(self.dir, "host_key")
        self.host_pub = keygen(self.host_key, "test-host")
        self.other_host_pub = keygen(os.path.join(self.dir, "other_host_key"), "other-host")
        self.user_key = os.path.join(self.dir, "user_key")
        user_pub = keygen(self.user_key, "test-user")
        self.other_user_key = os.path.join(self.dir, "other_user_key")
        keygen(self.other_user_key, "other-user")
        self.authorized_keys = os.path.join(self.dir, "authorized_keys")
        with open(self.authorized_keys, "w") as f:
            f.write(user_pub + "\n")
        os.chmod(self.authorized_keys, 0o644)

    def known_hosts_line(self, port: int, pub: str | None = None) -> str:
        kind, blob = (pub or self.host_pub).split()[:2]
        return f"[127.0.0.1]:{port} {kind} {blob}\n"

    def _argv(self, config: str) -> list[str]:
        """sshd in a private mount namespace where root's ~/.bashrc is empty: bash sources it
        for every ssh command, and this machine's (pyenv init) costs ~0.5 s a command. The
        namespace dies with sshd; unshare and sh exec, so the PID is sshd's."""
        empty = os.path.join(self.dir, "empty_bashrc")
        open(empty, "w").close()
        bind = (f"mount --bind {shlex.quote(empty)} /root/.bashrc && "
                if os.path.exists("/root/.bashrc") else "")
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                f"{bind}exec {SSHD} -D -e -f {shlex.quote(config)}"]

    def start(self, extra: list[str] = ()) -> Sshd:
        n = len(self.servers)
        config = os.path.join(self.dir, f"sshd_config.{n}")
        log_path = os.path.join(self.dir, f"sshd.{n}.log")
        for _ in range(3):
            port = _free_port()
            with open(config, "w") as f:
                f.write("\n".join([
                    *extra,    # first: for most keywords, sshd keeps the first value it reads
                    f"ListenAddress 127.0.0.1:{port}",
                    f"HostKey {self.host_key}",
                    "PidFile none",
                    "UsePAM no",
                    "StrictModes no",
                    "PermitRootLogin prohibit-password",
                    f"AuthorizedKeysFile {self.authorized_keys}",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "LogLevel VERBOSE", ""]))
            log = open(log_path, "ab")
            proc = subprocess.Popen(self._argv(config), stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT)
            log.close()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and proc.poll() is None:
                with open(log_path, errors="replace") as f:
                    if f"Server listening on 127.0.0.1 port {port}" in f.read():
                        break
                time.sleep(0.02)
            else:
                _kill(proc)
                continue   # exited (e.g. the port got taken) or never listened: retry
            known_hosts = os.path.join(self.dir, f"known_hosts.{n}")
            with open(known_hosts, "w") as f:
                f.write(self.known_hosts_line(port))
            server = Sshd(self.dir, port, known_hosts, proc, log_path)
            self.servers.append(server)
            return server
        with open(log_path, errors="replace") as f:
            pytest.fail(f"sshd did not start:\n{f.read()[-3000:]}")

    def stop_all(self) -> None:
        for s in self.servers:
            _kill(s.proc)


def _descendants(pid: int) -> list[int]:
    """PIDs below pid (sshd's per-connection children and the commands they run)."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill(proc: subprocess.Popen) -> None:
    """The listener and everything it forked, by PID (children outlive a killed listener)."""
    below = _descendants(proc.pid) if proc.poll() is None else []
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    for pid in below:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="session")
def sshd_factory():
    if os.geteuid() != 0:
        pytest.skip("the sshd fixture needs root (privilege separation, root login)")
    if not os.path.exists(SSHD):
        pytest.fail("sshd not found: install Debian's openssh-server (scripts/install.sh does)")
    os.makedirs(PRIVSEP_DIR, mode=0o755, exist_ok=True)
    factory = SshdFactory(tempfile.mkdtemp(prefix="cftest-sshd-"))
    try:
        factory.setup()
        yield factory
    finally:
        factory.stop_all()
        shutil.rmtree(factory.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def sshd(sshd_factory) -> Sshd:
    """A plain sshd on 127.0.0.1: root may log in with sshd_factory.user_key."""
    return sshd_factory.start()
