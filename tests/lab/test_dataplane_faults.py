"""The Felix dataplane cross-check (suites/routing/test_felix_dataplane.py) catches drift
between the datastore and the kernel, and only its own check for that chain or set fails.

One seed lab for the module. Felix repairs drift at its next full comparison with the kernel
(IptablesRefreshInterval, 60 s), which could fall between planting and looking: node1's
interval is raised for the fault (a config change, which also makes Felix reconcile once, so
it is set and settled *before* the fault is planted) and removed again to heal it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import pytest

from fixtures.expect.felix import names
from tests.helpers import lab_cli, run_suites, wait_healed
from tests.lab import faults as f

pytestmark = pytest.mark.lab

NODE = "node1"
REFRESH_KEY = f"/calico/v1/host/{NODE}/config/IptablesRefreshInterval"
WEB_CONTAINER_2_IP = "192.168.22.2"          # seed.yaml: web_container_2 on node2


@dataclass
class Case:
    name: str
    plant: Callable[[f.Lab, str], None]       # (lab, web network id)
    present: Callable[[f.Lab, str], bool]     # still planted when the suites have looked
    failing: str                              # the one test that must fail
    says: str                                 # words its message must hold


@pytest.fixture(scope="module")
def lab():
    up = lab_cli("up")
    assert up.returncode == 0, up.stderr
    yield f.Lab()
    assert lab_cli("down").returncode == 0


@pytest.fixture(scope="module")
def web(lab) -> str:
    with lab.docker(NODE) as c:
        return c.api.inspect_network("web")["Id"]


def _suites(tmp_path, *only):
    return run_suites(tmp_path, *(only or ("suites/bootstrap", "suites/routing", "suites/bgp")),
                      "--lab-attach", "-n", "2")


def _refresh_interval(lab: f.Lab, seconds: int | None) -> None:
    with lab.in_mgmt():
        if seconds is None:
            lab.etcd().delete(REFRESH_KEY)
        else:
            lab.etcd().write(REFRESH_KEY, str(seconds))
    time.sleep(3)            # Felix polls each second; the config change reconciles once


def _web_inbound(web: str) -> str:
    return names.profile_chain(web, "inbound")


def _rule_count(lab: f.Lab, chain: str) -> int:
    return sum(line.startswith("-A ") for line in lab.sh(NODE, "iptables", "-S", chain).splitlines())


def _in_set(lab: f.Lab, name: str, ip: str) -> bool:
    return lab.hosts[NODE].run(["ipset", "test", name, ip], timeout=10).ok


CASES = [
    # rule 3 of the chain is the MARK of web's inbound rule 2 (allow tcp to ports 80,443)
    Case("profile-rule-removed",
         lambda lab, web: lab.sh(NODE, "iptables", "-D", _web_inbound(web), "3"),
         lambda lab, web: _rule_count(lab, _web_inbound(web)) == 3,
         f"test_felix_dataplane::test_profile_chain[{NODE}/web-inbound]",
         "inbound rule 2 of profile web (allow tcp to ports 80,443) is incomplete"),
    Case("tag-ipset-member-removed",
         lambda lab, web: lab.sh(NODE, "ipset", "del", names.tag_ipset(web), WEB_CONTAINER_2_IP),
         lambda lab, web: not _in_set(lab, names.tag_ipset(web), WEB_CONTAINER_2_IP),
         f"test_felix_dataplane::test_tag_ipset[{NODE}/web]",
         f"missing {WEB_CONTAINER_2_IP} (web_container_2 on node2)"),
]


def test_healthy_lab_passes_the_dataplane_checks(lab, tmp_path):
    run = _suites(tmp_path)
    assert run.rc == 0 and not run.failed(), run.output
    for case in CASES:
        assert run.outcomes.get(case.failing) == "passed", (case.failing, sorted(run.outcomes))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_drift_fails_its_own_check_only(lab, web, tmp_path, case):
    _refresh_interval(lab, 3600)
    try:
        case.plant(lab, web)
        run = _suites(tmp_path)
        still = case.present(lab, web)
    finally:
        _refresh_interval(lab, None)          # Felix reconciles: the drift is repaired
    assert still, f"{case.name}: Felix repaired the fault before the suites looked"
    assert run.failed() == {case.failing}, (
        f"{case.name}: failed {sorted(run.failed())}, expected {case.failing}\n{run.output[-3000:]}")
    assert case.says in run.messages[case.failing], run.messages[case.failing]
    wait_healed(lambda *only: _suites(tmp_path, *only), run, 60, f"the lab to heal after {case.name}")
