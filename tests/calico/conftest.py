"""The `ctl` fixture: calicoctl run in-process against the loopback etcd of tests/etcd_server.py."""
from __future__ import annotations

import io

import pytest

from lab.calico.calicoctl.cli import main


@pytest.fixture
def ctl(etcd_client, etcd_server, monkeypatch, capsys):
    host, port = etcd_server
    monkeypatch.setenv("ETCD_AUTHORITY", f"{host}:{port}")
    monkeypatch.setenv("HOSTNAME", "node1")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")   # no Docker: no mapping

    def run(line: str, stdin: str = "") -> tuple[int, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        usage = ""
        try:
            rc = main(line.split())
        except SystemExit as exc:   # docopt exits with the usage text as its code, like sys.exit(msg)
            rc, usage = (exc.code, "") if isinstance(exc.code, int) else (1, str(exc.code))
        captured = capsys.readouterr()
        return rc, captured.out + captured.err + usage
    run.etcd = etcd_client
    return run
