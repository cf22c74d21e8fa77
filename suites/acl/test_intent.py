"""Declared intent (--intent FILE, or the topology's own; fixtures/expect/intent.py): each
statement is checked on the cells it decides, twice. Against the datastore: the policy engine's
verdicts, so a removed rule or a lost tag fails here although the dataplane follows etcd. Against
the dataplane: the probes."""
import pytest

from fixtures.acl.intent import broken_in_dataplane, broken_in_datastore, decided
from fixtures.acl.results import traced_first
from fixtures.expect.intent import IntentError, check_names
from fixtures.plugins.intent import network_tags, session_names, statements


@pytest.fixture(scope="session")
def intent_cells(lab, acl_matrix, pytestconfig):
    return decided(statements(pytestconfig), acl_matrix, network_tags(lab))


def _decides(intent_statement, intent_cells):
    cells = intent_cells[intent_statement]
    assert cells, (f"{intent_statement.where}: '{intent_statement.text}' decides no cell of the "
                   "ACL matrix (earlier statements take all it selects, or it selects none)")
    return cells


def test_intent_names(lab, pytestconfig):
    """Every name the intent uses exists in the lab (checked before building for the embedded
    lab; a real lab's names come from its datastore)."""
    try:
        check_names(statements(pytestconfig), session_names(lab), "the lab's datastore")
    except IntentError as exc:
        pytest.fail(str(exc), pytrace=False)


def _check(st, cells, broken, what, saw):
    verb = "allow" if st.allow else "deny"
    assert not broken, (f"'{st.text}': {what} does not {verb} {len(broken)} of {len(cells)} "
                        "cells:\n" + "\n".join(f"  {c.src} -> {c.dst} ({c.dst_ip}) {c.probe}: {saw(c)}"
                                                for c in broken[:20]))


def test_intent_in_the_datastore(intent_statement, intent_cells):
    cells = _decides(intent_statement, intent_cells)
    _check(intent_statement, cells, broken_in_datastore(intent_statement, cells),
           "the datastore's policy", lambda c: f"{'allowed' if c.expected else 'dropped'}: {c.reason}")


def test_intent_in_the_dataplane(intent_statement, intent_cells):
    cells = _decides(intent_statement, intent_cells)
    _check(intent_statement, cells, traced_first(broken_in_dataplane(intent_statement, cells)), "the dataplane",
           lambda c: (f"{'reached' if c.finally_reached else 'not reached'} "
                      f"({c.second or c.first}); the engine: {c.reason}"
                      + (f"\n      trace: {c.trace}" if c.trace else "")))
