"""The run history on a real seed lab: three runs of `pytest suites/bootstrap suites/routing
--lab-attach --history DIR` — healthy, with IP forwarding off on node2, healthy again — and
the records say exactly what the fault broke as new, then as fixed; the JSON summary and the
JUnit properties say the same run's story for other tools."""
from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET

import pytest

from fixtures.report import history
from lab import netns, paths, proc
from tests.helpers import lab_cli, run_suites

pytestmark = pytest.mark.lab

# what forwarding off on node2 breaks: the sysctl check, and node1's workload pinging node2's
FOOTPRINT = ["suites/bootstrap/test_host.py::test_ip_forward[node2]",
             "suites/routing/test_node_dataplane.py::test_icmp_between_nodes[node1-node2]"]
SAYS = "node2: net.ipv4.ip_forward is 0, expected 1"


@pytest.fixture(scope="module")
def lab():
    up = lab_cli("up")
    assert up.returncode == 0, up.stderr
    yield
    assert lab_cli("down").returncode == 0


def _forward(value: int) -> None:
    proc.run(netns.nsenter(["sysctl", "-qw", f"net.ipv4.ip_forward={value}"],
                           net=paths.NodePaths("node2").netns_file))


def _changes(report, title: str) -> list[str]:
    """The test ids the report's "changed since" section lists under `title` (it must come
    before the results table: on the first screen)."""
    page = html.unescape(report.read_text())
    changes = page.index('class="history-changes"')
    assert changes < page.index('id="results-table"'), "the changes come after the results"
    section = page[changes:page.index("</div>", changes)]
    head = re.search(rf"<b>{re.escape(title)}: (\d+)</b></p>(<ul>.*?</ul>)?", section)
    assert head, f"no {title!r} in the report's changes: {section[:500]}"
    names = re.findall(r"<code>(.*?)</code>", head.group(2) or "")
    assert len(names) == int(head.group(1))
    return names


def test_history_names_a_planted_fault_as_new_then_as_fixed(lab, tmp_path):
    folder = tmp_path / "history"
    args = ("suites/bootstrap", "suites/routing", "--lab-attach", f"--history={folder}")
    healthy = run_suites(tmp_path, *args)
    assert healthy.rc == 0 and healthy.failed() == set(), healthy.output
    _forward(0)
    try:
        broken = run_suites(tmp_path, *args, "-n", "2",    # the controller gets the workers' reports
                            f"--html={tmp_path / 'broken.html'}", "--self-contained-html")
    finally:
        _forward(1)
    fixed = run_suites(tmp_path, *args, f"--html={tmp_path / 'fixed.html'}", "--self-contained-html")
    assert broken.failed_nodeids() == FOOTPRINT, broken.output
    assert fixed.rc == 0 and fixed.failed() == set(), fixed.output

    loaded = history.load(str(folder))
    assert loaded.problems == [] and len(loaded.records) == 3
    first, second, third = loaded.records
    assert history.compare([first], second).new_failures == FOOTPRINT
    back = history.compare([first, second], third)
    assert back.fixes == FOOTPRINT and back.new_failures == [] and back.still_failing == []
    assert SAYS in second.tests[FOOTPRINT[0]].message
    assert f"new failure: {FOOTPRINT[0]}" in broken.output
    # the report's "changed since" section says the same, before the results table
    assert _changes(tmp_path / "broken.html", "New failures") == FOOTPRINT
    assert _changes(tmp_path / "fixed.html", "Fixed") == FOOTPRINT
    assert _changes(tmp_path / "fixed.html", "New failures") == []

    summary = json.loads(broken.summary.read_text())
    assert summary["verdict"] == "failed" and summary["counts"]["failed"] == 2
    assert summary["suites"]["bootstrap"]["verdict"] == "failed"
    assert {f["test"] for f in summary["failures"]} == set(FOOTPRINT)
    assert any(SAYS in f["message"] for f in summary["failures"])
    assert summary["changes"]["new_failures"] == FOOTPRINT
    assert any("felix_reporter" in n["reason"] for n in summary["not_applicable"])
    assert summary["lab"]["name"] == "seed" and summary["lab"]["nodes"]["node2"] == "192.168.20.2"
    assert json.loads(fixed.summary.read_text())["changes"]["fixes"] == FOOTPRINT

    props = {p.get("name"): p.get("value") for p in ET.parse(fixed.junit).iter("property")}
    assert props["lab.name"] == "seed" and props["lab.target"] == "attached"
    assert props["lab.nodes"] == "node1 192.168.20.1, node2 192.168.20.2"
    assert "etcd://192.168.20.1:2379" in props["version.docker@node2"]
