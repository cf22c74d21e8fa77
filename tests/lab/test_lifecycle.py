"""The embedded lab's life cycle through the real CLI: up, down, crash recovery, bad input."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from lab import preflight, state, teardown
from tests.helpers import ROOT, lab_cli, machine_snapshot, one_line_error

pytestmark = pytest.mark.lab


def test_down_leaves_nothing_and_up_after_a_crash_cleans_first():
    before = machine_snapshot()
    assert lab_cli("up").returncode == 0
    try:
        st = state.load()
        with_container = lab_cli("exec", "node1", "--", "docker", "run", "-d", "--name",
                                 "crash-victim", "calico-net-test:1.0", "sleep", "600")
        assert with_container.returncode == 0, with_container.stderr
        # kill -9 everything the lab runs, containers included, as a crash or OOM would
        victims = teardown.lab_processes()
        assert {d.pid for d in st.daemons.values()} <= set(victims)
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:      # e.g. a shim that exited once its container was killed
                pass

        again = lab_cli("up")
        assert again.returncode == 0, again.stderr
        assert "cleaning up the leftovers" in again.stdout
        down = lab_cli("down")
        assert down.returncode == 0 and "nothing left behind" in down.stdout, \
            down.stdout + down.stderr
        assert teardown.leftovers() == []
        assert machine_snapshot() == before
    finally:
        lab_cli("down")     # a failed check above must not leave the lab to the next test


def test_down_with_nothing_up_is_a_no_op():
    cp = lab_cli("down")
    assert cp.returncode == 0 and "nothing to do" in cp.stdout


def test_exec_with_no_lab_up_says_how_to_start_one():
    assert "python -m lab up" in one_line_error(lab_cli("exec", "node1", "--", "true"))


@pytest.mark.parametrize("content, expected", [
    ("nodes: [\n", "not valid YAML"),
    ("nodes:\n  - name: node1\n    ip: 192.168.20.300\n", "nodes[0].ip"),
    ("nodez: []\n", "unknown key 'nodez'"),
], ids=["syntax", "bad-ip", "unknown-key"])
def test_malformed_topology_is_one_error_and_builds_nothing(tmp_path, content, expected):
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    err = one_line_error(lab_cli("up", "--topology", str(bad)))
    assert str(bad) in err and expected in err
    assert teardown.leftovers() == []


def test_unknown_topology_lists_the_known_ones():
    err = one_line_error(lab_cli("up", "--topology", "nosuch"))
    assert "nosuch" in err and "seed" in err


def test_not_root_is_one_clear_error():
    # drop privileges after the imports (the interpreter itself may live under /root)
    code = ("import os, sys; from lab import cli; os.setegid(65534); os.seteuid(65534); "
            "sys.exit(cli.main(['up']))")
    cp = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert "needs root" in one_line_error(cp)
    assert teardown.leftovers() == []


def test_missing_debian_package_is_named(tmp_path):
    # a PATH holding every required tool but BIRD's
    for exe in preflight.REQUIRED_BINARIES:
        found = preflight.shutil.which(exe)
        if found and preflight.REQUIRED_BINARIES[exe] != "bird":
            os.symlink(found, tmp_path / exe)
    env = {**os.environ, "PATH": str(tmp_path)}
    err = one_line_error(lab_cli("up", env=env))
    assert "missing Debian package(s) bird:" in err and "apt-get install bird" in err
    assert teardown.leftovers() == []
