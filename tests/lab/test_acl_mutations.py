"""The acl suite catches changes to the ACLs on exactly the affected cells, and passes again
once they are undone.

Policy changed with calicoctl shows against the baseline matrix (`--baseline`): the engine
follows the datastore, so only the comparison with before reveals it.
(Dataplane faults the datastore does not show — a rule deleted from a felix-p chain, a
felix-v4 ipset flushed — are not covered yet: creating the run's probe workloads changes the
datastore, and Felix rewrites its chains and ipsets before the probes go out.)
"""
from __future__ import annotations

import json
import re

import pytest

from lab import proc
from tests.helpers import ROOT, lab_cli, run_suites
from tests.lab import faults as f

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("acl")
    assert lab_cli("up").returncode == 0
    try:
        before = tmp / "before.json"
        run = run_suites(tmp, "suites/acl", "--lab-attach", "-n", "2", f"--snapshot={before}")
        assert run.rc == 0, run.output
        yield f.Lab(), before, json.loads(before.read_text())["matrix"]
    finally:
        assert lab_cli("down").returncode == 0


def _observed() -> dict[str, bool]:
    """The last run's matrix (reports/acl-matrix.json), keyed like the snapshot's."""
    run = json.loads((ROOT / "reports" / "acl-matrix.json").read_text())

    def name(w):  # cst-<run id>-<network>-<node> -> network@node
        network, _, node = w.split("-", 2)[2].rpartition("-")
        return f"{network}@{node}"
    return {f"{name(c['src'])} -> {name(c['dst'])} {c['probe']}": c["first"].startswith("answered")
            for c in run["cells"]}


def _key(k):
    m = re.fullmatch(r"(\S+)@(\S+) -> (\S+)@(\S+) (\S+)", k)
    return m.groups()     # src net, src node, dst net, dst node, probe


def _calicoctl(lab, *args):
    return lambda: lab.calicoctl("node1", *args)


MUTATIONS = {
    # name: (plant/restore builder, predicate over (src net, src node, dst net, dst node, probe)
    #        selecting exactly the cells whose reachability must change)
    "web-loses-80-443": (
        lambda lab: (_calicoctl(lab, "profile", "web", "rule", "remove", "inbound", "allow", "tcp", "to", "ports", "80,443"),
                     _calicoctl(lab, "profile", "web", "rule", "add", "inbound", "allow", "tcp", "to", "ports", "80,443")),
        lambda s, sn, d, dn, p: d == "web" and s != "web" and p in ("tcp/80", "tcp/443")),
    "app-loses-db-users-tag": (
        lambda lab: (_calicoctl(lab, "profile", "app", "tag", "remove", "db-users"),
                     _calicoctl(lab, "profile", "app", "tag", "add", "db-users")),
        lambda s, sn, d, dn, p: s == "app" and d == "mysqldb" and p == "tcp/3306"),
    "deny-443-inserted-first": (
        lambda lab: (_calicoctl(lab, "profile", "web", "rule", "add", "inbound", "--at=1", "deny", "tcp", "to", "ports", "443"),
                     _calicoctl(lab, "profile", "web", "rule", "remove", "inbound", "--at=1")),
        lambda s, sn, d, dn, p: d == "web" and p == "tcp/443"),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_acl_suite_fails_on_exactly_the_affected_cells(seed, tmp_path, name):
    lab, before_file, before = seed
    build, affected = MUTATIONS[name]
    plant, restore = build(lab)
    plant()
    try:
        run = run_suites(tmp_path, "suites/acl", "--lab-attach", "-n", "2", f"--baseline={before_file}")
        now = _observed()
    finally:
        restore()
    assert run.rc != 0, f"{name}: the acl suite passed\n{run.output[-2000:]}"
    changed = {k for k in before if now.get(k) != before[k]}
    predicted = {k for k in before if affected(*_key(k))}
    assert changed == predicted, (f"{name}: changed cells {sorted(changed)[:10]}… ({len(changed)}), "
                                  f"expected {sorted(predicted)[:10]}… ({len(predicted)}); "
                                  f"extra {sorted(changed - predicted)[:5]}, missing {sorted(predicted - changed)[:5]}")
    proc.wait_until(lambda: run_suites(tmp_path, "suites/acl", "--lab-attach", "-n", "2",
                                       f"--baseline={before_file}").rc == 0, 60, f"the lab to recover from {name}", 1)
