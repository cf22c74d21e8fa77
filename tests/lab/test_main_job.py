"""The main job as users run it: `pytest suites/ -n 2` builds, tests and removes its own lab."""
from __future__ import annotations

import pytest

from lab import state, teardown
from tests.helpers import lab_cli, machine_snapshot, run_suites

pytestmark = pytest.mark.lab


def test_suites_under_xdist_build_test_and_remove_their_lab(tmp_path):
    before = machine_snapshot()
    report = tmp_path / "suites.html"
    run = run_suites(tmp_path, "suites/", "-n", "2", f"--html={report}", "--self-contained-html")
    assert run.rc == 0 and run.failed() == set(), run.output
    assert len(run.outcomes) >= 11
    html = report.read_text()
    assert "test_docker_cluster_store[node2]" in html
    assert "etcd://192.168.20.1:2379" in html          # lab versions in the environment table
    assert teardown.leftovers() == [] and machine_snapshot() == before


def test_lab_keep_then_attach_then_down(tmp_path):
    kept = run_suites(tmp_path, "suites/bootstrap", "--lab-keep")
    try:
        assert kept.rc == 0, kept.output
        st = state.load()
        assert st is not None and all(d.alive() for d in st.daemons.values()), "--lab-keep removed the lab"
        attached = run_suites(tmp_path, "suites/bootstrap", "--lab-attach", "-n", "2")
        assert attached.rc == 0 and attached.outcomes.keys() == kept.outcomes.keys(), attached.output
        # a second build while one is up is refused with the way out
        refused = run_suites(tmp_path, "suites/bootstrap")
        assert refused.rc == 4 and "--lab-attach" in refused.output
        assert all(d.alive() for d in st.daemons.values())
    finally:
        assert lab_cli("down").returncode == 0
    assert teardown.leftovers() == []


def test_attach_with_no_lab_is_one_clear_error(tmp_path):
    run = run_suites(tmp_path, "suites/bootstrap", "--lab-attach")
    assert run.rc == 4 and "no lab is up" in run.output and "Traceback" not in run.output
