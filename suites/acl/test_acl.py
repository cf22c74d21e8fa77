"""Every profile rule and every default drop, checked with packets (spec §2, Cyclonus-style).

The policy engine (fixtures/expect/policy) predicts allow or drop for every ordered pair of
probe workloads (one per node × calico network), from each of the lab's own running workloads
and each calico host to every probe workload, and from every workload to every calico host, on every port a rule names, its neighbours and two unnamed
ports, over tcp, udp and icmp; the probe engine (fixtures/acl/probes) sends them.
One test per rule lists the cells that rule decides; one per profile and direction for the
default drop; one for the whole matrix (with the matrix in the report).
"""
import pytest

from fixtures.acl.results import traced_first
from fixtures.report.html import attach, matrix_html


def _check(cells, what):
    if not cells:
        pytest.skip(f"no probe reaches {what}: earlier rules decide every probe, or it matches "
                    "no probe workload")
    wrong = traced_first([c for c in cells if c.status == "wrong"])
    assert not wrong, f"{what}: {len(wrong)} of {len(cells)} cells wrong:\n" + "\n".join(
        f"  {c.src} -> {c.dst} ({c.dst_ip}) {c.probe}: expected "
        f"{'allowed' if c.expected else 'dropped'}, saw {c.first}; again: {c.second} — {c.reason}"
        + _trace(c, "\n      trace: ") for c in wrong[:20])


def _trace(cell, lead):
    """Where a third try's packet was counted last (wrong cells only; acl/trace)."""
    return f"{lead}{cell.trace}" if cell.trace else ""


def test_rule(acl_matrix, acl_rule):
    key, text = acl_rule
    _check(acl_matrix.for_rule(key), text)


def test_default_drop(acl_matrix, acl_default):
    key, text = acl_default
    _check(acl_matrix.for_rule(key), text)


def test_whole_matrix(acl_matrix, extras):
    attach(extras, matrix_html(acl_matrix))
    wrong, flaky = traced_first(acl_matrix.by_status("wrong")), acl_matrix.by_status("flaky")
    assert not wrong, (f"{len(wrong)} of {len(acl_matrix.cells)} cells differ from the policy engine "
                       f"({len(flaky)} more flaky): " + "; ".join(
                           f"{c.src}->{c.dst} {c.probe} expected {'allowed' if c.expected else 'dropped'}"
                           + _trace(c, ": ") for c in wrong[:15]))


@pytest.mark.applies("baseline-matrix")
def test_matrix_as_before(lab, acl_matrix, baseline_snapshot):
    """With --baseline: every cell reaches (or not) as it did when the snapshot was taken."""
    before, now = baseline_snapshot["matrix"], acl_matrix.summary(lab.run_prefix)
    changed = sorted(k for k in before if now.get(k) != before[k])
    assert not changed, (f"{len(changed)} of {len(before)} ACL cells changed since the baseline: "
                         + "; ".join(f"{k}: {'reached' if before[k] else 'dropped'} before, "
                                     f"{'reached' if now.get(k) else 'dropped' if k in now else 'not probed'} now"
                                     for k in changed[:25]))
