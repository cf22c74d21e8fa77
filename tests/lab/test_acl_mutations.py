"""The acl suite catches changes to the ACLs on exactly the affected cells, and passes again
once they are undone.

Policy changed with calicoctl shows against the baseline matrix (`--baseline`): the engine
follows the datastore, so only the comparison with before reveals it. Dataplane faults the
datastore does not show (a rule deleted from a felix-p chain, a felix-v4 ipset flushed) fail
the suite on their own; Felix, like 1.4's, repairs them only at its IptablesRefreshInterval
check (or when a config change restarts it), which the test raises for the duration so that
the fault holds.
"""
from __future__ import annotations

import json
import re
import shlex

import pytest

from lab import proc
from tests.helpers import lab_cli, run_suites
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
        assert sum(t.startswith("test_intent::test_intent_in_the_") for t in run.outcomes) == 22
        yield f.Lab(), before, json.loads(before.read_text())["matrix"]
    finally:
        assert lab_cli("down").returncode == 0


def _observed(suite_run) -> tuple[dict[str, bool], set[str]]:
    """That run's matrix (its --acl-matrix file), keyed like the snapshot's, and the
    keys of its cells that differ from the policy engine."""
    from fixtures.acl.results import Matrix
    run = Matrix.from_json(suite_run.acl_matrix.read_text())
    prefix = "-".join(run.destinations[0].split("-", 2)[:2])      # cst-<run id>
    summary = run.summary(prefix)
    keys = list(summary)                                           # in cell order
    return summary, {k for k, c in zip(keys, run.cells) if c.status == "wrong"}


HOST = "host"       # the "network" of a host row or column ("node2 -> web@node1 tcp/80")


def _end(text):
    """(network or HOST, node, own): "app/app_container_1@node2", "app@node2" or "node2"."""
    m = re.fullmatch(r"([^/@ ]+)(/\S+)?@(\S+)", text)
    return (m.group(1), m.group(3), m.group(2) is not None) if m else (HOST, text, False)


def _key(k):
    """src net (HOST for a host), src node, dst net (HOST for a host), dst node, probe, and
    whether the source is the lab's own workload ("app/app_container_1@node2") rather than a
    probe workload ("app@node2")."""
    src, dst, probe = re.fullmatch(r"(\S+) -> (\S+) (\S+)", k).groups()
    (s, sn, own), (d, dn, _) = _end(src), _end(dst)
    return s, sn, d, dn, probe, own


def _policed(s, sn, dn):
    """Felix 1.x polices every source but a host sending to its own workloads (OUTPUT)."""
    return not (s == HOST and sn == dn)


def _calicoctl(lab, *args):
    return lambda: lab.calicoctl("node1", *args)


def _delete_web_80_443(lab):
    node = "node1"
    chain, spec = f.felix_rule(lab, node, "-i", "--dports 80,443")
    return f.held_by_felix(lab, node, lambda: lab.sh(node, "iptables", "-w", "-D", chain, *shlex.split(spec)))


def _flush_db_users(lab):
    node = "node1"
    _, spec = f.felix_rule(lab, node, "-i", "--dports 3306")
    ipset = shlex.split(spec)[shlex.split(spec).index("--match-set") + 1]
    return f.held_by_felix(lab, node, lambda: lab.sh(node, "ipset", "flush", ipset))


MUTATIONS = {
    # name: (plant/restore builder, predicate over (src net, src node, dst net, dst node, probe,
    #        own) selecting exactly the cells whose reachability must change; the hosts' rows
    #        included: node2's nc to web@node1 port 80 loses it with web's rule)
    "web-loses-80-443": (
        lambda lab: (_calicoctl(lab, "profile", "web", "rule", "remove", "inbound", "allow", "tcp", "to", "ports", "80,443"),
                     _calicoctl(lab, "profile", "web", "rule", "add", "inbound", "allow", "tcp", "to", "ports", "80,443")),
        lambda s, sn, d, dn, p, own: d == "web" and s != "web" and p in ("tcp/80", "tcp/443")
        and _policed(s, sn, dn)),
    "app-loses-db-users-tag": (
        lambda lab: (_calicoctl(lab, "profile", "app", "tag", "remove", "db-users"),
                     _calicoctl(lab, "profile", "app", "tag", "add", "db-users")),
        lambda s, sn, d, dn, p, own: s == "app" and d == "mysqldb" and p == "tcp/3306"),
    "deny-443-inserted-first": (
        lambda lab: (_calicoctl(lab, "profile", "web", "rule", "add", "inbound", "--at=1", "deny", "tcp", "to", "ports", "443"),
                     _calicoctl(lab, "profile", "web", "rule", "remove", "inbound", "--at=1")),
        lambda s, sn, d, dn, p, own: d == "web" and p == "tcp/443" and _policed(s, sn, dn)),
    # dataplane faults: only node1's kernel changes
    "felix-p-rule-deleted": (
        _delete_web_80_443,
        lambda s, sn, d, dn, p, own: d == "web" and dn == "node1" and s != "web"
        and p in ("tcp/80", "tcp/443") and _policed(s, sn, dn)),
    # the probe workloads created afterwards are added to the set again (Felix adds members
    # incrementally): only the lab's own db-users members lose mysqldb@node1's port 3306
    "felix-v4-ipset-flushed": (
        _flush_db_users,
        lambda s, sn, d, dn, p, own: own and s == "app" and d == "mysqldb" and dn == "node1"
        and p == "tcp/3306"),
}


# The seed's declared intent (lab/topologies/seed.yaml) fails exactly these statements: against
# the datastore when the datastore changed, against the dataplane whenever packets changed.
WEB, APP_3306 = "[any-to-web-tcp/80,443-allow]", "[app-to-mysqldb-tcp/3306-allow]"
NODE2_WEB1, NODE1_WEB2 = "[host:node2-to-web@node1-tcp/80,443-allow]", "[host:node1-to-web@node2-tcp/80,443-allow]"
DATASTORE, DATAPLANE = "test_intent::test_intent_in_the_datastore", "test_intent::test_intent_in_the_dataplane"
WEB_RULE = {kind + stmt for kind in (DATASTORE, DATAPLANE) for stmt in (WEB, NODE2_WEB1, NODE1_WEB2)}
INTENT_FAILS = {
    "web-loses-80-443": WEB_RULE,
    "app-loses-db-users-tag": {DATASTORE + APP_3306, DATAPLANE + APP_3306},
    "deny-443-inserted-first": WEB_RULE,
    "felix-p-rule-deleted": {DATAPLANE + WEB, DATAPLANE + NODE2_WEB1},     # node1's kernel only
    "felix-v4-ipset-flushed": {DATAPLANE + APP_3306},
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_acl_suite_fails_on_exactly_the_affected_cells(seed, tmp_path, name):
    lab, before_file, before = seed
    build, affected = MUTATIONS[name]
    plant, restore = build(lab)
    plant()
    try:
        run = run_suites(tmp_path, "suites/acl", "--lab-attach", "-n", "2", f"--baseline={before_file}")
        now, wrong = _observed(run)
    finally:
        restore()
    assert run.rc != 0, f"{name}: the acl suite passed\n{run.output[-2000:]}"
    changed = {k for k in before if now.get(k) != before[k]}
    predicted = {k for k in before if affected(*_key(k))}
    assert changed == predicted, (f"{name}: changed cells {sorted(changed)[:10]}… ({len(changed)}), "
                                  f"expected {sorted(predicted)[:10]}… ({len(predicted)}); "
                                  f"extra {sorted(changed - predicted)[:5]}, missing {sorted(predicted - changed)[:5]}")
    if name.startswith("felix-"):      # the datastore is unchanged: the engine itself disagrees
        assert wrong == predicted, f"{name}: cells differing from the engine: {sorted(wrong)[:10]}"
    intent_failed = {t for t in run.failed() if t.startswith("test_intent::")}
    assert intent_failed == INTENT_FAILS[name], f"{name}: failed intent tests {sorted(intent_failed)}"
    assert all(run.outcomes.get(t) == "passed" for t in run.outcomes
               if t.startswith("test_intent::") and t not in INTENT_FAILS[name])
    proc.wait_until(lambda: run_suites(tmp_path, "suites/acl", "--lab-attach", "-n", "2",
                                       f"--baseline={before_file}").rc == 0, 150, f"the lab to recover from {name}", 1)
