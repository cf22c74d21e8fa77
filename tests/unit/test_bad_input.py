"""Bad input, tried as a new user would: every case is one line naming the file or option, the
key and a fix, with a non-zero exit, in well under two seconds of CPU, before anything is built.

Each command runs as a user runs it (`pytest suites/ …`, `python -m lab …`) in a subprocess, and
can build nothing and reach nothing even if a check regressed: it runs in a network namespace of
its own with only a loopback (down), with PATH pointing at an empty folder (no nsenter, ip,
dockerd, …: builder.up's preflight would stop first) and CALAB_PREFIX=calabh.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from lab.topology import load_topology
from tests.helpers import ROOT, one_line_error

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                reason="needs root and unshare (each case runs in a network "
                                       "namespace of its own)")

CPU_LIMIT = 2.0           # seconds of CPU per refused command (wall time varies with load)
SEED = (ROOT / "lab" / "topologies" / "seed.yaml").read_text()
# the example, and the same without a slash (which urlsplit would take for a path)
HOSTILE_ENDPOINTS = {"issue": "http://10.0.0.1$(touch {pwned}) --iptables=false x:2379",
                     "no-slash": "http://10.0.0.1$(touch pwned) --iptables=false x:2379",
                     "backquote": "http://10.0.0.1;`reboot`;x:2379"}


@pytest.fixture
def readable_dir():
    """A folder the dropped user can read (pytest's tmp_path is root's only)."""
    path = Path(tempfile.mkdtemp(prefix="cftest-bad-input-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def drop_to_nobody() -> list[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv is not installed")
    return [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def run(tmp: Path, *argv: str, env: dict | None = None,
        user: list[str] = ()) -> tuple[subprocess.CompletedProcess, float]:
    """argv (after the Python interpreter) from the project root, confined as the module says;
    returns the result and the CPU seconds it took."""
    empty = tmp / "empty-path"
    empty.mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items()
            if k not in ("CALAB_PREFIX", "XDG_RUNTIME_DIR") and "proxy" not in k.lower()}
    full_env = {**base, "PATH": str(empty), "CALAB_PREFIX": "calabh", "HOME": str(tmp),
                **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    cp = subprocess.run([shutil.which("unshare"), "--net", "--", *user, sys.executable, *argv],
                        cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=60,
                        stdin=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert time.monotonic() - t0 < 30, "far too slow"
    return cp, cpu


def suites(*args: str) -> tuple[str, ...]:
    return ("-m", "pytest", "suites/", "-q", "-p", "no:cacheprovider", *args)


def refused(cp: subprocess.CompletedProcess, cpu: float, *words: str) -> str:
    """The one line, checked for every word (file or option, key, fix)."""
    line = one_line_error(cp)
    for word in words:
        assert word in line, f"{word!r} not in: {line}"
    assert cpu < CPU_LIMIT, f"{cpu:.2f}s of CPU before the error: {line}"
    return line


# -- security -------------------------------------------------------------------------------


def inventory(tmp: Path, endpoint: str = "http://192.168.20.1:2379", name: str = "hardening",
              file: str = "inv.yaml") -> Path:
    path = tmp / file
    path.write_text(json.dumps({"version": 1, "name": name, "etcd": {"endpoints": [endpoint]},
                                "hosts": {"node1": {"address": "127.0.0.1"}}}))
    return path


@pytest.mark.parametrize("how", ["suites", "provision"])
@pytest.mark.parametrize("endpoint", sorted(HOSTILE_ENDPOINTS))
def test_etcd_endpoint_with_shell_text_is_refused(tmp_path, how, endpoint):
    pwned = tmp_path / "pwned"
    inv = inventory(tmp_path, HOSTILE_ENDPOINTS[endpoint].format(pwned=pwned))
    argv = suites(f"--inventory={inv}") if how == "suites" else \
        ("-m", "lab", "provision", f"--inventory={inv}", "--dry-run")
    refused(*run(tmp_path, *argv), str(inv), "key 'etcd.endpoints[0]'",
            "is not an etcd endpoint like http://192.168.20.1:2379", "an IP address or DNS name")
    assert not pwned.exists()


def test_ini_password_with_a_space_is_not_echoed(tmp_path):
    inv = tmp_path / "lab.ini"
    inv.write_text("[all:vars]\ncalab_etcd_endpoints=http://192.168.20.1:2379\n[calico_nodes]\n"
                   "n1 ansible_host=127.0.0.1 ansible_password=hunter2 secretword\n")
    line = refused(*run(tmp_path, *suites(f"--inventory={inv}")), str(inv), "line 4: host n1",
                   "ansible_password", "must be quoted")
    assert "hunter2" not in line and "secretword" not in line


# -- topology files -------------------------------------------------------------------------

RULES = [
    ("port-out-of-range", "allow tcp to ports 70000", "Invalid SRCPORTS or DSTPORTS specified"),
    ("port-range-open", "allow tcp to ports 80-", "Invalid SRCPORTS or DSTPORTS specified"),
    ("unknown-protocol", "allow tcpx to ports 80", "unexpected 'tcpx' (token 2)"),
    ("unclosed-quote", "allow tcp to ports '80", "no closing quotation"),
    ("port-range", "allow tcp to ports 80:90", "list the ports one by one"),
]


# `lab up` for every rule; pytest (the same loader, a slower start) for two of them
RULE_CASES = [pytest.param("lab-up", *r[1:], id=f"{r[0]}-lab-up") for r in RULES] + [
    pytest.param("suites", *r[1:], id=f"{r[0]}-suites") for r in RULES if r[0] in
    ("port-out-of-range", "unclosed-quote")]


@pytest.mark.parametrize("how, rule, reason", RULE_CASES)
def test_bad_profile_rule_is_refused_at_load(tmp_path, how, rule, reason):
    topo = tmp_path / "bad.yaml"
    topo.write_text(SEED.replace('"allow tcp to ports 80,443"', json.dumps(rule)))
    argv = suites(f"--topology={topo}") if how == "suites" else ("-m", "lab", "up", "--topology", str(topo))
    refused(*run(tmp_path, *argv), f"{topo}: profiles[0].rules.inbound[1]: profile web: rule",
            rule, reason)


# -- declared intent ------------------------------------------------------------------------

INTENTS = [
    ("bad-protocol", "- any -> web tcpx/80 allow\n", "[0] (line 1)", "protocol 'tcpx' is not one of"),
    ("bad-port", "- web -> app any allow\n- any -> web tcp/80,99999 allow\n", "[1] (line 2)",
     "port '99999' is not a number 1-65535"),
    ("four-words", "- any -> web allow\n", "[0] (line 1)", "is not five words"),
    ("workload-as-destination", "- any -> workload:web_container_1 any allow\n", "[0] (line 1)",
     "the matrix's destinations are the probe workloads"),
    ("unknown-network", "- any -> webb tcp/80 allow\n", "[0] (line 1)",
     "TO webb: no such network in topology seed (networks: app, db-users, mysqldb, web)"),
    ("unknown-tag", "- tag:dbusers -> mysqldb tcp/3306 allow\n", "[0] (line 1)",
     "no such tag in topology seed"),
    ("unknown-host", "- host:node9 -> web any allow\n", "[0] (line 1)",
     "FROM host:node9: no such host in topology seed (hosts: node1, node2)"),
    ("not-a-list", "intent: any -> web tcp/80 allow\n", "", "expected a list of statements"),
    ("contradiction", "- web -> app any allow\n- web -> app tcp/80 deny\n", "[1] (line 2)",
     "contradicts 'web -> app any allow' at"),
]


@pytest.mark.parametrize("content, where, reason", [pytest.param(*c[1:], id=c[0]) for c in INTENTS])
def test_bad_intent_file_is_refused_before_building(tmp_path, content, where, reason):
    path = tmp_path / "intent.yaml"
    path.write_text(content)
    # the fix: the grammar for a malformed statement, the lab's names for an unknown one,
    # what to change for a contradiction
    fix = ("s: " if "no such" in reason else "drop one, or narrow the ports" if "contradicts" in reason
           else "(a statement is FROM -> TO PROTOCOL allow|deny")
    refused(*run(tmp_path, *suites(f"--intent={path}")), f"--intent: {path}{where}", reason, fix)


def test_bad_intent_in_a_topology_names_the_file_and_key(tmp_path):
    topo = tmp_path / "topo.yaml"
    topo.write_text(SEED.replace('"web -> app any allow"', '"web -> app any maybe"'))
    index = load_topology("seed").intent.index("web -> app any allow")
    refused(*run(tmp_path, *suites(f"--topology={topo}")), f"{topo}: intent[{index}]",
            "action 'maybe' is not allow or deny")


@pytest.mark.parametrize("how", ["suites", "lab-up"])
def test_huge_topology_is_refused_unread(tmp_path, how):
    topo = tmp_path / "huge.yaml"
    topo.write_text(SEED + "# " + "x" * (12 << 20) + "\n")
    argv = suites(f"--topology={topo}") if how == "suites" else ("-m", "lab", "up", "--topology", str(topo))
    refused(*run(tmp_path, *argv), str(topo), "larger than 256 KiB", "is this the right file?")


# -- the run itself ---------------------------------------------------------------------------


def test_inventory_etcd_that_does_not_answer_stops_the_run(tmp_path):
    inv = inventory(tmp_path, "http://127.0.0.1:9", name="hardening-noetcd")
    refused(*run(tmp_path, *suites(f"--inventory={inv}")), str(inv), "etcd.endpoints",
            "http://127.0.0.1:9 does not answer", "check the endpoint")


def test_embedded_lab_as_a_user_says_it_needs_root(tmp_path):
    refused(*run(tmp_path, *suites(), user=drop_to_nobody()), "the embedded lab needs root",
            "sudo ./run suites", "--inventory FILE")


def test_inventory_as_a_user_without_private_runtime_dir(tmp_path, readable_dir):
    inv = inventory(readable_dir)
    inv.chmod(0o644)
    refused(*run(tmp_path, *suites(f"--inventory={inv}"), user=drop_to_nobody()),
            "needs root", "XDG_RUNTIME_DIR")


BASELINES = [("json-list", "[1]", "got a list"), ("json-string", '"x"', "got a string"),
             ("version-only", '{"version": 1}', "key 'taken' is missing"),
             ("version-2", '{"version": 2}', "snapshot version 2, this suite reads version 1")]


@pytest.mark.parametrize("text, reason", [b[1:] for b in BASELINES], ids=[b[0] for b in BASELINES])
def test_bad_baseline_is_refused_first(tmp_path, text, reason):
    base = tmp_path / "before.json"
    base.write_text(text)
    line = refused(*run(tmp_path, *suites(f"--baseline={base}")), f"--baseline {base}: ", reason,
                   "--snapshot FILE")
    assert line.count(str(base)) == 1, line


def test_unwritable_snapshot_is_refused_first(tmp_path):
    out = tmp_path / "nodir" / "x.json"
    refused(*run(tmp_path, *suites(f"--snapshot={out}")), f"--snapshot {out}", "does not exist",
            "an existing folder you can write")


def test_acl_traces_out_of_range_is_refused_first(tmp_path):
    refused(*run(tmp_path, *suites("--acl-traces=-1")), "--acl-traces -1", "give 0 to 1000")


@pytest.mark.parametrize("option", ["--topology=seed", "--lab-attach"])
def test_embedded_options_with_an_inventory_are_refused(tmp_path, option):
    inv = inventory(tmp_path)
    refused(*run(tmp_path, *suites(f"--inventory={inv}", option)),
            f"{option.replace('=', ' ')} with --inventory {inv}", "drop one of the two")


@pytest.mark.parametrize("argv", [suites(), ("-m", "lab", "status")], ids=["suites", "lab-status"])
def test_invalid_prefix_is_one_line(tmp_path, argv):
    refused(*run(tmp_path, *argv, env={"CALAB_PREFIX": "../x"}), "CALAB_PREFIX='../x'",
            "1-8 lower-case letters or digits")


@pytest.mark.parametrize("argv", [suites("--help"), ("-m", "lab", "--help")], ids=["suites", "lab"])
def test_help_works_with_an_invalid_prefix(tmp_path, argv):
    cp, _ = run(tmp_path, *argv, env={"CALAB_PREFIX": "../x"})
    assert cp.returncode == 0 and "usage:" in cp.stdout and "Traceback" not in cp.stderr, cp.stderr


def test_inventory_lock_message_does_not_suggest_a_prefix(tmp_path):
    from fixtures.targets import InventoryTarget
    from fixtures.targets.run_lock import RunLock
    inv = inventory(tmp_path, name="hardening-locked")
    held = RunLock(InventoryTarget.lock_path("hardening-locked"), "the lab")
    held.acquire()
    try:
        line = refused(*run(tmp_path, *suites(f"--inventory={inv}")),
                       f"another pytest run (pid {os.getpid()}) is testing the lab hardening-locked",
                       "wait for it to finish")
    finally:
        held.release()
    assert "CALAB_PREFIX" not in line
