"""A real, private etcd (v2 API) for tests of code that reads or writes the Calico datastore
(the reference node's datastore and IPAM, calicoctl, the suite's own datastore reader).

One etcd per test session, on 127.0.0.1 with free client and peer ports and a throw-away data
directory; every test starts from an empty /calico (Calico's own ST wiped /calico the same way).
Only loopback traffic; the process is ours and is killed by PID at the end.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

import etcd
import pytest

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _etcd_supports(flag: str) -> bool:
    out = subprocess.run([ETCD, "--help"], capture_output=True, text=True, timeout=10)
    return flag in out.stdout + out.stderr


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/v2/keys/?quorum=true", timeout=0.5) as r:
            return r.status == 200
    except Exception:
        return False


def _start(data_dir: str, log_path: str, extra: list[str]):
    client, peer = _free_port(), _free_port()
    curl, purl = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    cmd = [ETCD, "--name", "calico-test", "--data-dir", data_dir,
           "--listen-client-urls", curl, "--advertise-client-urls", curl,
           "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
           "--initial-cluster", f"calico-test={purl}", "--initial-cluster-state", "new",
           "--enable-v2=true", "--log-level", "error", *extra]
    log = open(log_path, "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None, client    # e.g. a port taken between probing and binding: retry
        if _healthy(curl):
            return proc, client
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    return None, client


@pytest.fixture(scope="session")
def etcd_server():
    """(host, port) of a private etcd 3.4 with the v2 API enabled."""
    if not os.path.exists(ETCD):
        pytest.fail("etcd binary not found: install Debian's etcd-server (scripts/install.sh does)")
    extra = ["--unsafe-no-fsync"] if _etcd_supports("--unsafe-no-fsync") else []
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None   # no disk syncs to wait for
    data_dir = tempfile.mkdtemp(prefix="calico-etcd-", dir=base)
    log_path = data_dir + ".log"
    proc = None
    try:
        for _ in range(3):
            shutil.rmtree(data_dir, ignore_errors=True)
            os.makedirs(data_dir)
            proc, port = _start(data_dir, log_path, extra)
            if proc is not None:
                break
        if proc is None:
            with open(log_path, errors="replace") as f:
                pytest.fail(f"etcd did not become healthy:\n{f.read()[-3000:]}")
        yield ("127.0.0.1", port)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(data_dir, ignore_errors=True)
        try:
            os.unlink(log_path)
        except OSError:
            pass


@pytest.fixture
def etcd_client(etcd_server) -> etcd.Client:
    """A python-etcd client on an empty /calico."""
    host, port = etcd_server
    client = etcd.Client(host=host, port=port, read_timeout=10)
    try:
        client.delete("/calico", recursive=True, dir=True)
    except etcd.EtcdKeyNotFound:
        pass
    return client
