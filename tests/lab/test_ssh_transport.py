"""lab/ssh.py against a real OpenSSH server on 127.0.0.1 (tests/sshd_server.py), no mocks:
commands, stdin, quoting, connection reuse, timeouts, sudo, every connect failure as one
SshError, trust-on-first-use, and the docker SDK over the same SSH connection to a private
bare lab's dockerd (under a lab prefix of its own).
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field, replace

import pytest

from lab import paths, ssh
from lab.errors import LabError
from lab.transport import CommandTimeout
from tests.helpers import ROOT, lab_cli
from tests.sshd_server import sshd, sshd_factory  # noqa: F401  (fixtures)


@dataclass(frozen=True)
class Access:
    """The fields of lab.inventory.SshAccess, which lab.ssh reads by duck typing."""
    user: str
    port: int
    key_file: str | None
    known_hosts: str
    host_key_policy: str
    sudo: bool
    connect_timeout: float
    command_timeout: float
    password: str | None = field(default=None, repr=False)
    sudo_password: str | None = field(default=None, repr=False)


def access(server, factory, **kw) -> Access:
    base = Access(user="root", port=server.port, key_file=factory.user_key,
                  known_hosts=server.known_hosts, host_key_policy="verify", sudo=False,
                  connect_timeout=5, command_timeout=10)
    return replace(base, **kw)


@pytest.fixture(autouse=True)
def fresh_connections():
    """Each test starts and ends without cached connections (the cache keys on address,
    port and user only, so a test with a wrong key must not find a good connection)."""
    ssh.close_all()
    yield
    ssh.close_all()


@pytest.fixture
def host(sshd, sshd_factory) -> ssh.SshHost:
    return ssh.SshHost("node1", "127.0.0.1", access(sshd, sshd_factory))


def failure(h: ssh.SshHost) -> str:
    """The one SshError connecting gives, checked for its prefix and for no chained cause."""
    with pytest.raises(ssh.SshError) as info:
        h.run(["true"])
    msg = str(info.value)
    assert msg.startswith(f"ssh {h.name} ({h.where}): "), msg
    err = info.value
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__), \
        "a chained traceback"
    assert len(msg.splitlines()) == 1, msg
    return msg


# -- commands ---------------------------------------------------------------------------------

def test_run_gives_exit_code_stdout_and_stderr(host):
    res = host.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (res.rc, res.stdout, res.stderr) == (3, "out\n", "err\n")
    cp = host._run_bytes(["printf", "\\000\\377"], timeout=10)
    assert (cp.returncode, cp.stdout, cp.args) == (0, b"\x00\xff", ["printf", "\\000\\377"])


def test_stdin_input_reaches_the_command_and_ends(host):
    assert host.run(["cat"], input="line 1\nline 2\n").stdout == "line 1\nline 2\n"
    assert host.run(["cat"]).stdout == ""       # no input: EOF at once, not a hang
    # more than the SSH window both ways at once: no deadlock between stdin and stdout
    big = "x" * 3_000_000
    res = host.run(["cat"], input=big, timeout=30)
    assert res.rc == 0 and len(res.stdout) == len(big)


def test_argv_reaches_the_remote_verbatim_never_through_a_shell(host, tmp_path):
    marker = tmp_path / "injected"
    argv = ["printf", "[%s]\\n", "a b", "'q'", '"dq"', "$(touch {0})".format(marker),
            "`touch {0}`".format(marker), ";", f"; touch {marker}", f"&& touch {marker}",
            f"| touch {marker}", "*", "$HOME", "back\\slash", "new\nline", ""]
    res = host.run(argv)
    assert res.rc == 0, res.stderr
    assert res.stdout == "".join(f"[{a}]\n" for a in argv[2:])
    assert not marker.exists(), "an argument was run by the remote shell"


def test_read_file_through_cat(host, tmp_path):
    path = tmp_path / "data bin"
    path.write_bytes(b"\x00binary\xff\n" * 100)
    assert host.read_file(str(path)) == path.read_bytes()
    with pytest.raises(LabError, match=r"node1: cannot read .*No such file"):
        host.read_file(str(tmp_path / "missing"))


# -- one connection ---------------------------------------------------------------------------

def test_one_connection_is_reused_by_commands_hosts_and_threads(host, sshd, sshd_factory):
    first = host.transport()
    host.run(["true"])
    same = ssh.SshHost("other-name", "127.0.0.1", access(sshd, sshd_factory))
    same.run(["true"])
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(host.run(["echo", str(i)])))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.stdout for r in results) == [f"{i}\n" for i in range(8)]
    assert host.transport() is first and same.transport() is first
    host.close()
    assert host.transport() is not first


def test_a_dead_transport_is_replaced_on_next_use(host):
    first = host.transport()
    first.close()
    assert host.run(["echo", "back"]).stdout == "back\n"
    assert host.transport() is not first and host.transport().is_active()


def test_a_forked_child_opens_its_own_connection(host):
    parent = host.transport()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:   # child: report, never return into pytest
        try:
            out = host.run(["echo", "child"]).stdout.strip()
            verdict = f"{out} {'shared' if host.transport() is parent else 'own'}"
        except BaseException as exc:   # noqa: BLE001
            verdict = f"error {exc}"
        os.write(w, verdict.encode())
        os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        verdict = f.read()
    assert (status, verdict) == (0, "child own")
    assert host.transport() is parent and host.run(["true"]).rc == 0


# -- timeouts ---------------------------------------------------------------------------------

def test_command_timeout_is_clear_and_on_time(host):
    t0 = time.monotonic()
    with pytest.raises(CommandTimeout) as info:
        host.run(["sleep", "5"], timeout=1)
    took = time.monotonic() - t0
    assert 1 <= took < 1.5, took
    assert str(info.value).startswith(f"ssh node1 ({host.where}): `sleep 5` timed out after 1s")
    assert host.run(["echo", "still fine"]).stdout == "still fine\n"


def test_command_timeout_defaults_to_the_access_setting(sshd, sshd_factory):
    h = ssh.SshHost("node1", "127.0.0.1", access(sshd, sshd_factory, command_timeout=0.5))
    with pytest.raises(CommandTimeout, match="after 0.5s"):
        h.run(["sleep", "5"])


# -- sudo -------------------------------------------------------------------------------------

def _need_sudo():
    if not shutil.which("sudo"):
        pytest.skip("sudo is not installed (scripts/install.sh installs it)")


def test_sudo_runs_argv_under_sudo_n(sshd, sshd_factory):
    _need_sudo()
    h = ssh.SshHost("node1", "127.0.0.1", access(sshd, sshd_factory, sudo=True))
    assert h.command(["id", "-u"]) == ("sudo -n -- id -u", b"")
    res = h.run(["sh", "-c", 'echo "$SUDO_USER:$(id -u)"; cat'], input="in")
    assert (res.rc, res.stdout) == (0, "root:0\nin")


SUDO_USER = "cftestssh"
SUDOERS = f"/etc/sudoers.d/{SUDO_USER}"


def _drop_sudo_user():
    try:
        os.unlink(SUDOERS)
    except FileNotFoundError:
        pass
    subprocess.run(["userdel", "-r", "-f", SUDO_USER], capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def sudo_user():
    """A throw-away user whose sudo wants its (random) password; removed afterwards."""
    _need_sudo()
    _drop_sudo_user()    # leftovers of a killed run
    password = secrets.token_urlsafe(16)
    try:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", SUDO_USER], check=True,
                       capture_output=True, timeout=30)
        subprocess.run(["chpasswd"], input=f"{SUDO_USER}:{password}", text=True, check=True,
                       capture_output=True, timeout=30)
        with open(SUDOERS, "w") as f:
            f.write(f"{SUDO_USER} ALL=(ALL) ALL\nDefaults:{SUDO_USER} lecture=never\n")
        os.chmod(SUDOERS, 0o440)
        subprocess.run(["visudo", "-c", "-f", SUDOERS], check=True, capture_output=True)
        yield SUDO_USER, password
    finally:
        ssh.close_all()
        _drop_sudo_user()


def test_sudo_password_goes_to_sudo_and_input_to_the_command(sudo_user, sshd, sshd_factory):
    user, password = sudo_user
    h = ssh.SshHost("node1", "127.0.0.1", access(sshd, sshd_factory, user=user, sudo=True,
                                                 sudo_password=password))
    assert h.run(["id", "-un"]).stdout == "root\n"
    res = h.run(["cat"], input="only this")     # twice: a cached credential changes nothing
    assert (res.rc, res.stdout) == (0, "only this")
    assert password not in res.stdout + res.stderr
    plain = ssh.SshHost("node1", "127.0.0.1", access(sshd, sshd_factory, user=user))
    assert plain.run(["id", "-un"]).stdout == f"{user}\n"


def test_sudo_without_the_password_it_needs_is_one_clear_error(sudo_user, sshd, sshd_factory):
    user, password = sudo_user
    h = ssh.SshHost("node1", "127.0.0.1", access(sshd, sshd_factory, user=user, sudo=True))
    msg = failure(h)
    assert msg.endswith(f"sudo -n: a password is required for {user}: set sudo_password in the "
                        f"inventory, or allow {user} NOPASSWD in sudoers"), msg
    ssh.close_all()
    wrong = "not-" + password
    h = ssh.SshHost("node1", "127.0.0.1", access(sshd, sshd_factory, user=user, sudo=True,
                                                 sudo_password=wrong))
    msg = failure(h)
    assert msg.endswith(f"sudo rejected the sudo_password for {user}") and wrong not in msg


def test_password_login_without_a_key_file(sudo_user, sshd_factory):
    user, password = sudo_user
    server = sshd_factory.start(["PasswordAuthentication yes"])
    h = ssh.SshHost("node1", "127.0.0.1", access(server, sshd_factory, user=user, key_file=None,
                                                 password=password))
    assert h.run(["id", "-un"]).stdout == f"{user}\n"
    ssh.close_all()
    wrong = replace(h.access, password="not-" + password)
    msg = failure(ssh.SshHost("node1", "127.0.0.1", wrong))
    assert f"authentication failed as user {user} with the default keys (~/.ssh/id_*) and " \
           "ssh-agent and the password" in msg and password not in msg


# -- connect failures: one SshError each ------------------------------------------------------

def test_wrong_key_is_authentication_failed(sshd, sshd_factory):
    h = ssh.SshHost("node1", "127.0.0.1",
                    access(sshd, sshd_factory, key_file=sshd_factory.other_user_key,
                           password="s3cret-never-shown"))
    msg = failure(h)
    assert (f"authentication failed as user root with key file {sshd_factory.other_user_key} "
            "and the password") in msg
    assert "s3cret" not in msg


def test_missing_and_broken_key_files(sshd, sshd_factory, tmp_path):
    missing = tmp_path / "nope"
    msg = failure(ssh.SshHost("n", "127.0.0.1", access(sshd, sshd_factory, key_file=str(missing))))
    assert msg.endswith(f"key file {missing} does not exist (check key_file in the inventory)")
    junk = tmp_path / "junk"
    junk.write_text("not a key\n")
    msg = failure(ssh.SshHost("n", "127.0.0.1", access(sshd, sshd_factory, key_file=str(junk))))
    assert f"key file {junk} is not a private key paramiko can load" in msg
    locked = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pass phrase", "-f", str(locked)],
                   check=True, capture_output=True)
    msg = failure(ssh.SshHost("n", "127.0.0.1", access(sshd, sshd_factory, key_file=str(locked))))
    assert f"key file {locked} is passphrase-protected" in msg


def test_unknown_host_key(sshd, sshd_factory, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    msg = failure(ssh.SshHost("n", "127.0.0.1", access(sshd, sshd_factory, known_hosts=str(empty))))
    name = f"[127.0.0.1]:{sshd.port}"
    assert (f"host key unknown: {name} is not in {empty}; the server offered ssh-ed25519 "
            "SHA256:") in msg
    assert f"`ssh-keyscan -p {sshd.port} 127.0.0.1 >> {empty}`" in msg
    assert msg.endswith("or set host_key_policy: trust-on-first-use")
    msg = failure(ssh.SshHost("n", "127.0.0.1",
                              access(sshd, sshd_factory, known_hosts=str(tmp_path / "none"))))
    assert "(the file does not exist)" in msg


def test_changed_host_key_names_the_line_to_fix(sshd, sshd_factory, tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text("# mine\n[127.0.0.1]:1 ssh-ed25519 " + sshd_factory.host_pub.split()[1] + "\n"
                  + sshd_factory.known_hosts_line(sshd.port, sshd_factory.other_host_pub))
    msg = failure(ssh.SshHost("n", "127.0.0.1", access(sshd, sshd_factory, known_hosts=str(kh))))
    name = f"[127.0.0.1]:{sshd.port}"
    assert "host key CHANGED: the server offered ssh-ed25519 SHA256:" in msg
    assert f"not the key {kh} line 3 holds for {name}: possible man-in-the-middle attack" in msg
    assert f"`ssh-keygen -R '{name}' -f {kh}`" in msg


def test_trust_on_first_use_records_the_key_then_verifies_it(sshd, sshd_factory, tmp_path):
    kh = tmp_path / "dir" / "known_hosts"
    kh.parent.mkdir()
    tofu = access(sshd, sshd_factory, known_hosts=str(kh), host_key_policy="trust-on-first-use")
    assert ssh.SshHost("n", "127.0.0.1", tofu).run(["true"]).rc == 0
    assert kh.read_text() == sshd_factory.known_hosts_line(sshd.port)
    assert kh.stat().st_mode & 0o777 == 0o600
    ssh.close_all()
    verify = replace(tofu, host_key_policy="verify")
    assert ssh.SshHost("n", "127.0.0.1", verify).run(["true"]).rc == 0
    # a changed key is refused in trust-on-first-use too, and the file is left alone
    kh.write_text(sshd_factory.known_hosts_line(sshd.port, sshd_factory.other_host_pub))
    ssh.close_all()
    assert "host key CHANGED" in failure(ssh.SshHost("n", "127.0.0.1", tofu))
    assert kh.read_text() == sshd_factory.known_hosts_line(sshd.port, sshd_factory.other_host_pub)
    nowhere = tmp_path / "no-such-dir" / "known_hosts"
    msg = failure(ssh.SshHost("n", "127.0.0.1", replace(tofu, known_hosts=str(nowhere))))
    assert msg.endswith(f"trust-on-first-use cannot record the host key in {nowhere}: "
                        "No such file or directory")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]   # nothing listens once the socket is closed


def test_closed_port_is_connection_refused(sshd, sshd_factory):
    h = ssh.SshHost("n", "127.0.0.1", access(sshd, sshd_factory, port=_closed_port()))
    assert failure(h).endswith("connection refused (is sshd running, is the port right?)")


_WATCHED: list[str] | None = None


def _audit(event, args):
    if _WATCHED is not None and event in ("socket.getaddrinfo", "socket.connect", "socket.sendto",
                                          "socket.gethostbyname"):
        _WATCHED.append(event)


sys.addaudithook(_audit)


def test_name_that_does_not_resolve_fails_before_any_lookup(sshd, sshd_factory):
    global _WATCHED
    h = ssh.SshHost("n", "node1.example.invalid", access(sshd, sshd_factory))
    _WATCHED = []
    try:
        msg = failure(h)
    finally:
        seen, _WATCHED = _WATCHED, None
    assert msg.endswith("name does not resolve (check the inventory address / DNS)")
    assert seen == [], f"DNS or a connection was attempted: {seen}"


@pytest.fixture
def full_listener():
    """A loopback port whose accept queue is full: the kernel drops further SYNs, so a connect
    hangs until its timeout (loopback only). `accepted` is a connection sitting in the queue:
    connected, but no SSH banner ever comes."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=2)
    yield port
    filler.close()
    lsock.close()


def test_connect_timeout(full_listener, sshd, sshd_factory):
    h = ssh.SshHost("n", "127.0.0.1",
                    access(sshd, sshd_factory, port=full_listener, connect_timeout=0.5))
    t0 = time.monotonic()
    msg = failure(h)
    assert time.monotonic() - t0 < 2
    assert msg.endswith("timed out connecting after 0.5s (host down or filtered)")


def test_no_ssh_banner():
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)    # the connection completes in the kernel; nobody ever answers
        port = lsock.getsockname()[1]
        h = ssh.SshHost("n", "127.0.0.1", Access("root", port, None, "/nonexistent", "verify",
                                                 False, 0.5, 5))
        msg = failure(h)
    assert msg.endswith(f"connected, but no SSH handshake within 0.5s (is port {port} an SSH "
                        "server? is sshd overloaded?)")


# -- docker over ssh --------------------------------------------------------------------------

# a lab prefix of its own, derived from this run's (one per xdist worker), so that it never
# meets a lab someone else has up; tests.helpers treats other calab* prefixes as foreign
LAB_PREFIX = f"{paths.PREFIX[:7]}s"


@pytest.fixture(scope="module")
def lab_docker_sock():
    """A bare lab of our own (CALAB_PREFIX=LAB_PREFIX): the docker socket of its node1."""
    if os.geteuid() != 0:
        pytest.skip("the embedded lab needs root")
    env = {**os.environ, "CALAB_PREFIX": LAB_PREFIX}
    sock = subprocess.run([sys.executable, "-c", "from lab import paths; "
                           "print(paths.NodePaths('node1').docker_sock)"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True).stdout.strip()
    lab_cli("down", env=env)    # leftovers of a killed run
    try:
        up = lab_cli("up", "--bare", env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        yield sock
    finally:
        ssh.close_all()
        down = lab_cli("down", env=env)
        assert down.returncode == 0, down.stdout + down.stderr


@pytest.mark.lab
def test_docker_over_the_same_ssh_connection(lab_docker_sock, sshd_factory):
    server = sshd_factory.start([f"SetEnv DOCKER_HOST=unix://{lab_docker_sock}"])
    h = ssh.SshHost("node1", "127.0.0.1", access(server, sshd_factory))
    client = ssh.docker_client(h, timeout=30)
    try:
        assert client.ping() is True
        ssh.docker_ping(h, client)
        assert client.version()["ApiVersion"] == client.api.api_version
        assert client.info()["Name"] == "node1"
        name = f"sshtest-{uuid.uuid4().hex[:8]}"
        box = client.containers.run("calico-net-test:1.0", ["sleep", "30"], name=name,
                                    detach=True, network_mode="none")
        try:
            assert name in [c.name for c in client.containers.list(all=True)]
            code, out = box.exec_run(["echo", "over ssh"])
            assert (code, out) == (0, b"over ssh\n")
        finally:
            box.remove(force=True)
        assert h.run(["echo", "and commands"]).stdout == "and commands\n"
        second = ssh.docker_client(h)     # the negotiated version is reused: no round trip
        assert second.api.api_version == client.api.api_version
        second.close()
    finally:
        client.close()
    assert h.transport().is_active()      # closing a docker client leaves the connection
    assert server.log().count("Accepted publickey") == 1, "more than one SSH connection"


@pytest.mark.lab
def test_docker_daemon_not_reachable_is_one_clear_error(lab_docker_sock, sshd_factory, tmp_path):
    server = sshd_factory.start(["SetEnv DOCKER_HOST=unix:///run/sshtest-none/docker.sock"])
    h = ssh.SshHost("node1", "127.0.0.1", access(server, sshd_factory))
    with pytest.raises(ssh.SshError) as info:
        ssh.docker_client(h, timeout=10)
    msg = str(info.value)
    assert msg.startswith(f"ssh node1 ({h.where}): docker daemon not reachable through "
                          "`docker system dial-stdio`: Cannot connect to the Docker daemon at "
                          "unix:///run/sshtest-none/docker.sock"), msg
    assert "is dockerd running there" in msg


@pytest.mark.lab
def test_no_docker_cli_on_the_host_is_one_clear_error(lab_docker_sock, sshd_factory, tmp_path):
    bin_dir = tmp_path / "bin"    # a PATH with a shell and nothing else
    bin_dir.mkdir()
    os.symlink("/bin/sh", bin_dir / "sh")
    tmp_path.chmod(0o755)
    server = sshd_factory.start([f"SetEnv PATH={bin_dir} DOCKER_HOST=unix://{lab_docker_sock}"])
    h = ssh.SshHost("node1", "127.0.0.1", access(server, sshd_factory))
    with pytest.raises(ssh.SshError) as info:
        ssh.docker_client(h, timeout=10)
    assert str(info.value) == (f"ssh node1 ({h.where}): docker is not reachable: no docker CLI "
                               "on the host's PATH (`docker system dial-stdio` needs it: install "
                               "docker.io or docker-ce-cli there)")
