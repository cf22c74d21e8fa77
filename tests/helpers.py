"""Helpers for the project's own tests: run the real CLI and the real suites as a user would."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from lab import paths, proc

ROOT = Path(__file__).resolve().parent.parent


def lab_cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m lab ARGS` from the project root, exactly as the README runs it."""
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def one_line_error(cp: subprocess.CompletedProcess) -> str:
    """The error a user sees: non-zero exit, a single stderr line, no traceback."""
    err = cp.stderr.strip()
    assert cp.returncode != 0, f"expected a failure, got exit 0; stdout: {cp.stdout}"
    assert "Traceback" not in err and len(err.splitlines()) == 1, f"not one clear line:\n{err}"
    return err


@dataclass
class SuiteRun:
    rc: int
    outcomes: dict[str, str]      # test id -> passed | failed | error | skipped
    messages: dict[str, str]      # test id -> failure message
    output: str
    acl_matrix: Path | None = None  # the run's --acl-matrix file (written when the acl suite ran)
    summary: Path | None = None     # the run's --summary-json file
    junit: Path | None = None       # the run's JUnit XML
    nodeids: dict[str, str] = field(default_factory=dict)   # test id -> path::name, to re-run it

    def failed(self) -> set[str]:
        return {k for k, v in self.outcomes.items() if v in ("failed", "error")}

    def failed_nodeids(self) -> list[str]:
        return sorted(self.nodeids[k] for k in self.failed() if k in self.nodeids)


def wait_healed(rerun: Callable[..., SuiteRun], broken: SuiteRun, timeout: float, what: str) -> None:
    """After a planted fault is taken back: the tests it broke are re-run alone until they pass
    (seconds a try, not a whole run), then one whole run must be clean, so the next test starts
    from a healthy lab. rerun(*nodeids) runs those tests; rerun() the whole selection."""
    again = broken.failed_nodeids()
    if again:
        proc.wait_until(lambda: not rerun(*again).failed(), timeout, what, 1)
    proc.wait_until(lambda: not rerun().failed(), timeout, what, 1)


# faults planted one after another leave agent log errors behind that the next case's run
# would see; the log check has its own planted-fault test (test_diagnostics)
LOG_CHECK = "suites/bootstrap/test_agents.py::test_agent_log_clean"


def summary_of(xml: Path) -> Path:
    """Where a run writing `xml` writes its --summary-json (beside it, never into reports/)."""
    return xml.with_name(f"{xml.stem}-summary.json")


def suites_argv(xml: Path, *args: str, netns_file: str | None = None,
                log_check: bool = False) -> list[str]:
    """`pytest suites/… ARGS` writing JUnit XML; with netns_file, run inside that network
    namespace (as an operator host on the lab's fabric would)."""
    matrix = xml.with_name(xml.stem.replace("junit", "acl-matrix") + ".json")
    argv = [sys.executable, "-m", "pytest", *args, f"--junitxml={xml}", f"--acl-matrix={matrix}",
            f"--summary-json={summary_of(xml)}",
            "-q", "-p", "no:cacheprovider", *(() if log_check else (f"--deselect={LOG_CHECK}",))]
    return ["nsenter", f"--net={netns_file}", *argv] if netns_file else argv


def run_suites(tmp_path: Path, *args: str, timeout: float = 300,
               netns_file: str | None = None, log_check: bool = False) -> SuiteRun:
    """`pytest suites/… ARGS` in a subprocess, results read back from its JUnit XML."""
    xml = tmp_path / f"junit-{len(list(tmp_path.glob('junit-*.xml')))}.xml"
    cp = subprocess.run(suites_argv(xml, *args, netns_file=netns_file, log_check=log_check), cwd=ROOT,
                        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    outcomes, messages, nodeids = {}, {}, {}
    if xml.exists():
        for case in ET.parse(xml).iter("testcase"):
            module = case.get("classname", "")
            test_id = f"{module.rsplit('.', 1)[-1]}::{case.get('name')}"
            if module.startswith("suites."):
                nodeids[test_id] = f"{module.replace('.', '/')}.py::{case.get('name')}"
            outcome = "passed"
            for tag in ("failure", "error", "skipped"):
                el = case.find(tag)
                if el is not None:
                    outcome = {"failure": "failed"}.get(tag, tag)
                    messages[test_id] = el.get("message", "") + "\n" + (el.text or "")
                    break
            outcomes[test_id] = outcome
    matrix = xml.with_name(xml.stem.replace("junit", "acl-matrix") + ".json")
    return SuiteRun(cp.returncode, outcomes, messages, cp.stdout + cp.stderr, matrix,
                    summary_of(xml), xml, nodeids)


def _ours(entry: str) -> bool:
    """False for what another lab (CALAB_PREFIX) or a cftest- fixture owns, which may come and
    go while this test runs; everything else counts."""
    other = re.search(r"\b(calab[a-z0-9]*)-|/run/(calab[a-z0-9]*)\b", entry)
    if other and (other.group(1) or other.group(2)) != paths.PREFIX:
        return False
    return "cftest-" not in entry


def _daemons() -> list[str]:
    """Names of live lab-kind daemons that are this run's: in the root namespace or one of this
    lab's, or started under this run's CALAB_PREFIX. Another lab's (its namespaces, or its
    prefix in the environment) and those of unknown origin in a namespace that is not ours (a
    daemon another lab started over SSH, whose namespace file its teardown already removed)
    do not count: other xdist workers start and stop theirs at any moment."""
    mine, foreign = set(), set()
    for name in os.listdir("/run/netns") if os.path.isdir("/run/netns") else []:
        try:
            (mine if _ours(name) else foreign).add(os.stat(f"/run/netns/{name}").st_ino)
        except OSError:
            pass
    mine.add(os.stat("/proc/self/ns/net").st_ino)     # the root one: pytest runs there
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            comm, state = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2]
            net = os.stat(f"/proc/{pid}/ns/net").st_ino
        except (OSError, ValueError):
            continue
        # PID 1 reaps zombies lazily here, so a Z entry is already gone
        if comm not in LAB_DAEMONS or state == "Z" or net in foreign:
            continue
        run = _run_prefix(pid)
        if run == paths.PREFIX or (run is None and net in mine):
            found.add(comm)
    return sorted(found)


def _run_prefix(pid: str) -> str | None:
    """The CALAB_PREFIX a process was started under (None: none in its environment)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return None
    value = next((e[len(b"CALAB_PREFIX="):] for e in env if e.startswith(b"CALAB_PREFIX=")), None)
    return None if value is None else value.decode(errors="replace")


LAB_DAEMONS = {"etcd", "dockerd", "containerd", "containerd-shim", "bird"}


def machine_snapshot() -> dict:
    """What the lab must not leave changed: namespaces, mounts, root links, iptables, /run."""
    def out(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    with open("/proc/self/mountinfo") as f:
        mounts = sorted(m for m in (line.split()[4] for line in f) if _ours(m))
    iptables = [line for line in out("iptables-save").splitlines() if not line.startswith("#")]
    return {
        "netns": sorted(n for n in out("ip", "netns", "list").split() if _ours(n)),
        "mounts": mounts,
        "links": sorted(link["ifname"] for link in json.loads(out("ip", "-j", "link", "show"))),
        "iptables": [line.split(" [")[0] for line in iptables],   # drop packet counters
        "run": sorted(e for e in os.listdir("/run") if _ours(f"/run/{e}")),
        "daemons": _daemons(),
    }
