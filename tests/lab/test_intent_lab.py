"""Declared intent catches a wrong datastore without --baseline or --lab-attach: a lab built
from a seed topology whose web profile lost "allow tcp to ports 80,443" is internally
consistent (the engine and Felix agree, so every rule and matrix test passes), and only the
intent statements about web's 80 and 443 fail, each naming the rule that decides instead."""
from __future__ import annotations

import pytest

from lab import teardown
from tests.helpers import ROOT, run_suites

pytestmark = pytest.mark.lab

SEED = (ROOT / "lab" / "topologies" / "seed.yaml").read_text()
STATEMENTS = ("any-to-web-tcp/80,443-allow", "host:node2-to-web@node1-tcp/80,443-allow",
              "host:node1-to-web@node2-tcp/80,443-allow")


def test_a_topology_without_webs_rule_fails_exactly_its_intent(tmp_path):
    topo = tmp_path / "seed-without-web-80-443.yaml"
    assert '"allow tcp to ports 80,443"' in SEED
    topo.write_text(SEED.replace('inbound: [allow from tag web, "allow tcp to ports 80,443"]',
                                 "inbound: [allow from tag web]"))
    run = run_suites(tmp_path, "suites/acl", f"--topology={topo}", "-n", "2")
    expected = {f"test_intent::test_intent_in_the_{where}[{st}]"
                for where in ("datastore", "dataplane") for st in STATEMENTS}
    assert run.rc != 0 and run.failed() == expected, (sorted(run.failed()), run.output[-2000:])
    message = run.messages[f"test_intent::test_intent_in_the_datastore[{STATEMENTS[0]}]"]
    assert "'any -> web tcp/80,443 allow': the datastore's policy does not allow" in message
    assert "no rule of profiles [web] matches inbound: default drop" in message, message
    assert teardown.leftovers() == []
