"""Acceptance after a change (`--baseline before.json`): nothing that worked before was lost.

Every workload is still there with its address and node, and every node still reaches every
workload the same way (via the same host, or its own veth). What is deliberately not compared
is listed in fixtures/snapshot.py (VOLATILE) and shown in the report.
"""
import pytest

from fixtures import snapshot
from fixtures.report.html import attach, table_html


pytestmark = pytest.mark.applies("baseline")      # not collected without --baseline


@pytest.fixture
def baseline(baseline_snapshot):
    return baseline_snapshot


def _extra(extras, title, rows, bad):
    attach(extras, table_html(title, ["", "before", "now", ""], rows, bad))


def test_workloads_as_before(baseline, current_snapshot, extras):
    lost = snapshot.lost_workloads(baseline, current_snapshot)
    rows = snapshot.side_by_side(baseline["workloads"], current_snapshot["workloads"])
    _extra(extras, f"workloads (snapshot of {baseline['taken']} vs now)", rows,
           [i for i, r in enumerate(rows) if r[3]])
    assert not lost, "workloads changed since the baseline: " + "; ".join(
        f"{w}: {b} before, {n or 'gone'} now" for w, b, n in lost)


def test_paths_to_workloads_as_before(baseline, current_snapshot, node, extras):
    lost = snapshot.lost_paths(baseline, current_snapshot, node)
    rows = snapshot.side_by_side(baseline["paths"].get(node, {}), current_snapshot["paths"].get(node, {}))
    _extra(extras, f"{node}: how it reaches each workload (before vs now)", rows,
           [i for i, r in enumerate(rows) if r[3]])
    sessions = snapshot.side_by_side(dict(map(tuple, baseline["sessions"].get(node, []))),
                                     dict(map(tuple, current_snapshot["sessions"].get(node, []))))
    _extra(extras, f"{node}: BGP sessions before vs now (expected to change; not compared)",
           sessions, [])
    assert not lost, f"{node} reaches workloads differently than at the baseline: " + "; ".join(
        f"{w}: {b} before, {n} now" for w, b, n in lost)


def test_blocks_as_before(baseline, current_snapshot):
    before, now = baseline["blocks"], current_snapshot["blocks"]
    moved = {c: (o, now.get(c)) for c, o in before.items() if now.get(c) != o}
    assert not moved, f"IPAM blocks changed owner or disappeared since the baseline: {moved}"
