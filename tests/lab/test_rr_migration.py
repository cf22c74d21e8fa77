"""The route-reflector migration and its acceptance check, end to end, on the `rr` lab.

`python -m lab up --topology rr && pytest suites/ --snapshot before.json &&
python -m lab migrate-rr && pytest suites/ --baseline before.json` must pass; then faults
planted after the migration must each make the acceptance run fail on the intended test,
with a message that says what is wrong.
"""
from __future__ import annotations

import re
import time

import pytest

from tests.helpers import lab_cli, run_suites, wait_healed
from tests.lab import faults as f

pytestmark = pytest.mark.lab
NODE_CONF = "/etc/calico/confd/config/bird.cfg"
RR_CONF = "/config/bird.cfg"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """The whole flow; yields (lab, baseline file, the mesh run, when the migration began, the
    history folder) with the lab migrated."""
    tmp = tmp_path_factory.mktemp("rr")
    up = lab_cli("up", "--topology", "rr")
    assert up.returncode == 0, up.stderr
    try:
        before = tmp / "before.json"
        mesh = run_suites(tmp, "suites/", "--lab-attach", "-n", "2", f"--snapshot={before}",
                          f"--history={tmp / 'history'}")
        assert mesh.rc == 0 and before.exists(), mesh.output
        changed = time.time()
        mig = lab_cli("migrate-rr")
        assert mig.returncode == 0 and "migrated to route reflectors" in mig.stdout, mig.stderr
        yield f.Lab(), before, mesh, changed, tmp / "history"
    finally:
        assert lab_cli("down").returncode == 0


def _acceptance(tmp_path, before, *only, extra=()):
    return run_suites(tmp_path, *(only or ("suites/",)), "--lab-attach", "-n", "2",
                      f"--baseline={before}", *extra)


def test_acceptance_passes_after_migration(migrated, tmp_path):
    lab, before, mesh, changed, history = migrated
    report = tmp_path / "report.html"
    run = _acceptance(tmp_path, before, extra=("--converge=60", f"--changed-at={changed}",
                                               f"--history={history}", f"--html={report}",
                                               "--self-contained-html"))
    assert run.rc == 0 and not run.failed(), run.output
    # convergence measured from the migration's first command, once, before the tests
    found = re.search(r"convergence from --changed-at \S+: sessions Established (by|after) ([0-9.]+) s.*"
                      r"paths as before (by|after) ([0-9.]+) s", run.output)
    assert found and 0 < float(found.group(2)) < 60 and 0 < float(found.group(4)) < 60, run.output[-2000:]
    # the shape changed as intended: node <-> RR sessions only, and the RR's own checks ran
    assert "test_sessions::test_session_established[node1-node2]" in mesh.outcomes
    assert "test_sessions::test_session_established[node1-node2]" not in run.outcomes
    assert run.outcomes.get("test_sessions::test_session_established[node1-global-rr1]") == "passed"
    assert run.outcomes.get("test_route_reflectors::test_rr_client_configuration[rr1]") == "passed"
    assert run.outcomes.get("test_baseline::test_paths_to_workloads_as_before[node3]") == "passed"
    # the report's first screen: healthy, the reflector drawn, what changed since the mesh run
    page = report.read_text()
    first = page[:page.index('id="results-table"')]
    assert "HEALTHY: every check passed" in first and "Convergence</b> from" in first
    assert "<svg" in first and "rr1" in first
    assert "Changed since the run of" in first and "<b>New failures: 0</b>" in first, first[:3000]


def _still_meshed(lab):
    return f.edited_bird_config(lab, "node3", "calico-node", NODE_CONF, f.with_protocol(
        "protocol bgp Mesh_192_168_20_1 from bgp_template {\n  neighbor 192.168.20.1 as 64511;\n}"))


def _not_peered(lab):
    return f.edited_bird_config(lab, "node2", "calico-node", NODE_CONF,
                                f.without_protocol("Global_192_168_20_4"))


def _rr_missing_client(lab):
    return f.edited_bird_config(lab, "rr1", "calico-routereflector", RR_CONF,
                                f.without_protocol("Global_192_168_20_3"))


def _block_route_missing(lab):
    block = f.blocks_owned_by(lab, "node3")[0]
    return f.frozen_bird(lab, "node1", lambda: lab.sh("node1", "ip", "route", "del", block))


FAULTS = {
    # fault: (plant/restore builder, {test id: words its message must contain})
    "node-still-has-mesh-sessions": (_still_meshed, {
        "test_sessions::test_peer_set[node3]": "unexpected ['Mesh_192_168_20_1']"}),
    "node-not-peered-with-rr": (_not_peered, {
        "test_sessions::test_session_established[node2-global-rr1]": "no protocol Global_192_168_20_4",
        "test_route_reflectors::test_rr_session_established[rr1-node2]": "not Established"}),
    "rr-missing-a-client": (_rr_missing_client, {
        "test_route_reflectors::test_rr_client_configuration[rr1]": "missing ['Global_192_168_20_3']",
        "test_route_reflectors::test_rr_session_established[rr1-node3]": "no protocol Global_192_168_20_3"}),
    "block-route-missing": (_block_route_missing, {
        "test_baseline::test_paths_to_workloads_as_before[node1]": "web_3: via 192.168.20.3 before"}),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_acceptance_catches_fault_after_migration(migrated, tmp_path, name):
    lab, before = migrated[:2]
    build, says = FAULTS[name]
    plant, restore = build(lab)
    plant()
    try:        # the faults' wrong cells need no 20 traces (a second each): test_acl_traces has them
        run = _acceptance(tmp_path, before, extra=("--acl-traces=2",))
    finally:
        restore()
    for test_id, words in says.items():
        assert run.outcomes.get(test_id) == "failed", (
            f"{name}: {test_id} did not fail ({run.outcomes.get(test_id)}); failed: {sorted(run.failed())}")
        assert words in run.messages[test_id], f"{test_id} does not say {words!r}:\n{run.messages[test_id]}"
    wait_healed(lambda *only: _acceptance(tmp_path, before, *only), run, 90,
                f"the lab to recover from {name}")
