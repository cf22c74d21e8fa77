"""A wrong ACL cell's message says where its packet was counted last (fixtures/acl/trace).

Three dataplane faults the datastore does not show, planted together (one suite run): on node1
the accept rule for tcp 80,443 deleted from web's felix-p-…-i chain (held against Felix's
refresh as in test_acl_mutations) and a raw-table PREROUTING drop of everything arriving from
the fabric for the mysqldb pool (Felix never looks at that table); on node2 an unreachable
route over the first addresses of node1's web block (neither Felix's nor BIRD's, so neither
removes it; the suite waits its 20 s for the probe workloads' routes, then probes anyway). They
must read as a drop in node1's felix-to-… chain, as a packet that left node2 and never reached
node1's FORWARD chain, and as no route on node2.

The same failing run's HTML report is then opened in headless Chromium (Debian's chromium, in
a network namespace with nothing but loopback: `unshare --net`): the summary, the topology
picture, the heat map and a wrong cell's details are in the DOM, a profile whose name is markup
(written into etcd with the faults) stays text, and a screenshot is left in reports/.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess

import pytest

from fixtures.acl.results import Matrix
from tests.helpers import ROOT, lab_cli, run_suites
from tests.lab import faults as f

pytestmark = pytest.mark.lab

MYSQLDB_POOL = "192.168.23.0/24"          # lab/topologies/seed.yaml: the mysqldb network's
RAW_DROP = ["PREROUTING", "-i", "eth0", "-d", MYSQLDB_POOL, "-j", "DROP"]
WEB_LOW = "192.168.22.0/27"               # inside node1's web block: the probe workload's address
EVIL = "<img src=x onerror=alert(1)>"
EVIL_PROFILE = f"/calico/v1/policy/profile/{EVIL}"


@pytest.fixture(scope="module")
def lab():
    assert lab_cli("up").returncode == 0
    try:
        yield f.Lab()
    finally:
        assert lab_cli("down").returncode == 0


@pytest.fixture(scope="module")
def faulty_run(lab, tmp_path_factory):
    """One acl run (and its HTML report) with the three faults and the markup-named profile."""
    tmp = tmp_path_factory.mktemp("traces")
    chain, spec = f.felix_rule(lab, "node1", "-i", "--dports 80,443")
    plant, restore = f.held_by_felix(
        lab, "node1", lambda: lab.sh("node1", "iptables", "-w", "-D", chain, *shlex.split(spec)))
    plant()
    lab.sh("node1", "iptables", "-w", "-t", "raw", "-A", *RAW_DROP)
    lab.sh("node2", "ip", "route", "add", "unreachable", WEB_LOW)
    with lab.in_mgmt():
        lab.etcd().write(f"{EVIL_PROFILE}/tags", '["x"]')
    try:
        report = tmp / "report.html"
        run = run_suites(tmp, "suites/acl", "--lab-attach", "-n", "2", f"--html={report}",
                         "--self-contained-html")
    finally:
        with lab.in_mgmt():
            lab.etcd().delete(EVIL_PROFILE, recursive=True, dir=True)
        lab.sh("node2", "ip", "route", "del", "unreachable", WEB_LOW)
        lab.sh("node1", "iptables", "-w", "-t", "raw", "-D", *RAW_DROP)
        restore()
    return run, report


def test_wrong_cells_carry_their_trace(faulty_run):
    run, _ = faulty_run
    assert run.rc != 0, run.output[-2000:]

    web = run.messages.get("test_acl::test_rule[web-inbound-2]", "")
    dropped = re.search(r"trace: (dropped on node1 in felix-to-[0-9a-f]{11} rule \d+ "
                        r"\(DROP, 'Packet did not match any profile'\)[^\n]*)", web)
    assert dropped, f"web's tcp 80,443 rule failed without a trace naming node1's chain:\n{web}"

    mysqldb = "\n".join(m for t, m in run.messages.items() if t.startswith("test_acl::test_rule[mysqldb-"))
    assert re.search(r"trace: left node2 \(via 192\.168\.20\.1 dev eth0\) and never reached "
                     r"node1's FORWARD \(node1 routes 192\.168\.23\.\d+ dev cali", mysqldb), mysqldb
    no_route = re.search(r"trace: (no route on node2 for 192\.168\.22\.\d+ \(unreachable "
                         r"192\.168\.22\.0/27\))", web)
    assert no_route, web
    whole = run.messages.get("test_acl::test_whole_matrix", "")
    assert ": dropped on node1 in felix-to-" in whole or ": left node2 (" in whole, whole
    dataplane = run.messages.get("test_intent::test_intent_in_the_dataplane[any-to-web-tcp/80,443-allow]", "")
    assert "trace: dropped on node1 in felix-to-" in dataplane, dataplane

    matrix = Matrix.from_json(run.acl_matrix.read_text())
    wrong = matrix.by_status("wrong")
    traced = [c for c in wrong if not c.trace.startswith("not traced")]
    assert wrong and all(c.trace for c in wrong) and 0 < len(traced) <= 20
    assert not [c.trace for c in matrix.cells if c.status != "wrong" and c.trace]
    assert matrix.timings["traced"] == len(traced)
    print(f"{len(traced)} of {len(wrong)} wrong cells traced in {matrix.timings['trace']:.1f} s "
          f"(matrix {matrix.timings['total']:.1f} s); e.g. {dropped.group(1)}; {no_route.group(1)}")


def _chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "--net", shutil.which("chromium") or "chromium", "--headless",
                           "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def dom(faulty_run):
    _, report = faulty_run
    res = _chromium("--dump-dom", report.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def test_report_in_a_browser_has_the_summary_picture_matrix_and_a_wrong_cells_details(dom):
    summary = dom[dom.index('id="calab-summary"'):]
    assert "CHECK(S) FAILED" in summary and "test_rule" in summary
    assert "<svg" in summary and "node1" in summary
    wrong = re.search(r'<span class="q w" data-k="wrong-dropped"[^>]*title="([^"]*)"', summary)
    assert wrong, "no wrong cell in the heat map"
    assert "reproduce: on node" in wrong.group(1) and "trace: " in wrong.group(1)
    # node2's planted unreachable route is a difference in its routes table
    tables = summary[summary.index("Routes and BGP sessions per node"):]
    node2 = tables[tables.index("<h4>node2</h4>"):]
    assert re.search(rf'<tr data-state="unexpected"[^>]*><td><code>{re.escape(WEB_LOW)}</code>', node2), \
        node2[:3000]


def test_report_shows_a_name_made_of_markup_as_text(dom):
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom         # shown, as text
    assert not re.search(r"<img[^>]*onerror", dom), "markup from the lab became an element"


def test_report_screenshot_for_a_person(faulty_run):
    _, report = faulty_run
    shot = ROOT / "reports" / "report-screenshot.png"
    shot.parent.mkdir(exist_ok=True)
    res = _chromium(f"--screenshot={shot}", "--window-size=1400,1800", report.as_uri())
    assert res.returncode == 0 and shot.stat().st_size > 20_000, res.stderr[-2000:]
