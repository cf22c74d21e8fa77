"""Each diagnostic check is shown to fail, with the cause named, on the fault it exists for,
and only there: a stopped Felix (process state and its status reports), a stopped confd
that missed a BGP change, a BGP peer whose route broke while the session is Established,
errors in an agent's log.

One seed lab for the module, with Felix on node1 reporting its status every 2 s (calicoctl
turns reports off; an operator may turn them on) so that the status check is collected.
"""
from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from typing import Callable

import etcd
import pytest

from fixtures.facts.host_facts.agent_logs import collect_log_errors
from fixtures.facts.host_facts.agents import CONTAINERS
from lab import builder, proc
from tests.helpers import lab_cli, run_suites, wait_healed
from tests.lab import faults as f

pytestmark = pytest.mark.lab

REPORTING = "/calico/v1/host/node1/config/ReportingIntervalSecs"
LOG_SLACK = 15
LOGLEVEL = "/calico/bgp/v1/host/node1/loglevel"
# node1's BGP packets to node2 discarded by policy rules, the main table untouched (a
# blackhole for the address itself would also take the routes BIRD resolves through it)
PEER_RULES = [["to", "192.168.20.2", "ipproto", "tcp", "dport", "179", "blackhole"],
              ["to", "192.168.20.2", "ipproto", "tcp", "sport", "179", "blackhole"]]


@pytest.fixture(scope="module")
def lab():
    up = lab_cli("up")
    assert up.returncode == 0, up.stderr
    lab = f.Lab()
    with lab.in_mgmt():
        lab.etcd().write(REPORTING, "2")
    yield lab
    assert lab_cli("down").returncode == 0


def _suites(tmp_path, *only, extra=(), log_check=False):
    return run_suites(tmp_path, *(only or ("suites/bootstrap", "suites/routing", "suites/bgp")),
                      "--lab-attach", "-n", "2", *extra, log_check=log_check)


def _signal(lab, node, pattern, sig):
    for pid in lab.pids_in(node, ["-f", "--", pattern]):
        proc._signal(pid, sig)


@dataclass
class Case:
    name: str
    plant: Callable[[f.Lab], None]
    restore: Callable[[f.Lab], None]
    says: dict[str, str]            # exactly the tests that fail -> words their message holds


def _felix_stopped(lab):
    _signal(lab, "node1", "-m lab.calico.felix", signal.SIGSTOP)
    time.sleep(8)                  # its last report ages past 2 s + 5 s of slack


def _confd_missed_a_change(lab):
    _signal(lab, "node1", "-m lab.calico.bird", signal.SIGSTOP)
    lab.calicoctl("node1", "config", "node", "bgp", "loglevel", "debug")


def _confd_restore(lab):
    with lab.in_mgmt():
        lab.etcd().delete(LOGLEVEL)
    _signal(lab, "node1", "-m lab.calico.bird", signal.SIGCONT)


CASES = [
    Case("felix-stopped", _felix_stopped,
         lambda lab: _signal(lab, "node1", "-m lab.calico.felix", signal.SIGCONT),
         {"test_agents::test_agent_running[node1-felix]": "felix (pid",
          "test_agents::test_felix_reports_status[node1]": "Felix on node1 last reported"}),
    Case("confd-missed-a-bgp-change", _confd_missed_a_change, _confd_restore,
         {"test_agents::test_agent_running[node1-confd]": "is stopped",
          "test_agents::test_confd_rendered_the_bgp_keys[node1]": "the loglevel asks for debug all;"}),
    Case("route-to-peer-broken-while-established",
         lambda lab: [lab.sh("node1", "ip", "rule", "add", *r) for r in PEER_RULES],
         lambda lab: [lab.sh("node1", "ip", "rule", "del", *r) for r in PEER_RULES],
         {"test_sessions::test_session_reaches_its_peer[node1-node2]": "route to 192.168.20.2 is a blackhole",
          "test_sessions::test_session_reaches_its_peer[node2-node1]": "SYN to 192.168.20.1:179 from the node got no-answer"}),
]


def test_healthy_lab_passes_with_every_diagnostic(lab, tmp_path):
    run = _suites(tmp_path, log_check=True)
    assert run.rc == 0 and not run.failed(), run.output[-3000:]
    for test_id in ("test_agents::test_felix_reports_status[node1]", "test_agents::test_agent_running[node2-bird]",
                    "test_agents::test_agent_log_clean[node1-calico-node]",
                    "test_sessions::test_session_reaches_its_peer[node1-node2]"):
        assert run.outcomes.get(test_id) == "passed", f"{test_id}: {run.outcomes.get(test_id)}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault_fails_exactly_its_diagnostics(lab, tmp_path, case):
    case.plant(lab)
    try:
        run = _suites(tmp_path)
    finally:
        case.restore(lab)
    assert run.failed() == set(case.says), (f"{case.name}: failed {sorted(run.failed())}, expected "
                                            f"{sorted(case.says)}\n{run.output[-3000:]}")
    for test_id, words in case.says.items():
        assert words in run.messages[test_id], f"{test_id} does not say {words!r}:\n{run.messages[test_id]}"
    wait_healed(lambda *only: _suites(tmp_path, *only), run, 60, f"the lab to heal after {case.name}")


def test_agent_log_errors_fail_the_log_check_and_nothing_else(lab, tmp_path):
    """etcd down until both nodes' agents have logged it, then back: every check passes again,
    but the log check reports those errors per node."""
    def errors_since(since, containers=("calico-node",)):
        found = {}
        for node in ("node1", "node2"):
            with lab.docker(node) as client:
                found.update({(node, c): collect_log_errors(client, c, since).value for c in containers})
        return found

    # the window reaches back LOG_SLACK s before the run starts (the run's own start-up): no
    # error in that span may come from an earlier test
    proc.wait_until(lambda: not any(errors_since(time.time() - LOG_SLACK, CONTAINERS).values()),
                    LOG_SLACK + 10,
                    "earlier tests' agent log errors to age out of the window", 1)
    started = time.time()
    proc.stop([lab.st.daemons["etcd"]])
    try:
        proc.wait_until(lambda: all(errors_since(started - 1).values()), 30,
                        "both nodes' calico-node to log that etcd is gone", 0.5)
    finally:
        builder.start_etcd(lab.st)
    proc.wait_until(lambda: not _suites(tmp_path).failed(), 60, "the lab to answer again", 1)
    window = str(time.time() - started + LOG_SLACK)
    run = _suites(tmp_path, extra=(f"--agent-log-window={window}",), log_check=True)
    expected = {"test_agents::test_agent_log_clean[node1-calico-node]",
                "test_agents::test_agent_log_clean[node2-calico-node]"}
    assert run.failed() == expected, f"failed {sorted(run.failed())}\n{run.output[-3000:]}"
    for test_id in expected:
        assert "error" in run.messages[test_id] and "etcd" in run.messages[test_id], run.messages[test_id]
    assert "agent log errors during this run" in run.output


def test_no_status_reports_where_calicoctl_turned_them_off(lab, tmp_path):
    """Without the operator's ReportingIntervalSecs the check is not collected at all."""
    with lab.in_mgmt():
        lab.etcd().delete(REPORTING)
    try:
        run = _suites(tmp_path, "-k", "felix_reports_status")
        assert not run.outcomes and "no felix_reporter in this lab" in run.output, run.output[-2000:]
    finally:
        with lab.in_mgmt():
            try:
                lab.etcd().write(REPORTING, "2")
            except etcd.EtcdException:
                pass
