"""A real lab's path, tested for real: the embedded seed lab reached only through the inventory
`python -m lab inventory` writes (SSH to each node's sshd, docker over ssh://, etcd over HTTP),
from the lab's management namespace as an operator host on the fabric would.

- the suites give the same test ids and outcomes as the default embedded run;
- nothing is left on the hosts after a run, nor after Ctrl-C in the middle of one
  (the etcd tree and `docker ps -a` of every node are the same before and after);
- no secret (the SSH private key, an inventory password) reaches the report, JUnit or output;
- a wrong key, an unknown host key, a closed port and a command timeout each stop the run with
  one clear line.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time

import pytest
import yaml

from lab import proc
from tests.helpers import ROOT, lab_cli, run_suites, suites_argv
from tests.lab import faults as f

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inventory")
    up = lab_cli("up")
    assert up.returncode == 0, up.stderr
    try:
        inv = tmp / "lab.yaml"
        cp = lab_cli("inventory", "-o", str(inv))
        assert cp.returncode == 0, cp.stderr
        yield f.Lab(), inv
    finally:
        assert lab_cli("down").returncode == 0


def _inventory_run(lab, tmp_path, inv, *args):
    return run_suites(tmp_path, "suites", f"--inventory={inv}", *args,
                      netns_file=lab.st.mgmt_netns_file)


def _variant(inv, tmp_path, name, **ssh):
    """A copy of the lab's inventory with some ssh settings changed."""
    data = yaml.safe_load(inv.read_text())
    data["ssh"].update(ssh)
    out = tmp_path / f"{name}.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


def test_same_ids_and_outcomes_as_the_embedded_run(seed, tmp_path):
    lab, inv = seed
    embedded = run_suites(tmp_path, "suites", "--lab-attach", "-n", "2")
    assert embedded.rc == 0, embedded.output[-3000:]
    # a real lab states its intent in a file; here the one the embedded topology carries
    intent = tmp_path / "intent.yaml"
    intent.write_text(yaml.safe_dump(list(lab.st.topology.intent)))
    ssh = _inventory_run(lab, tmp_path, inv, "-n", "2", f"--intent={intent}")
    assert any(k.startswith("test_intent::") for k in ssh.outcomes)
    only = {k: (embedded.outcomes.get(k), ssh.outcomes.get(k))
            for k in set(embedded.outcomes) | set(ssh.outcomes)
            if embedded.outcomes.get(k) != ssh.outcomes.get(k)}
    assert not only, (f"{len(only)} test(s) differ (embedded, inventory): "
                      f"{dict(sorted(only.items())[:15])}\n{ssh.output[-3000:]}")
    assert len(ssh.outcomes) > 80 and ssh.rc == 0


def test_intent_naming_what_the_real_lab_lacks_fails_its_names_check(seed, tmp_path):
    """A real lab's names come from its datastore, so the intent's are checked by a test there
    (test_intent_names), not before the run as for the embedded lab."""
    lab, inv = seed
    intent = tmp_path / "intent.yaml"
    intent.write_text(yaml.safe_dump(["any -> webb tcp/80 allow"]))
    run = run_suites(tmp_path, "suites/acl/test_intent.py::test_intent_names", f"--inventory={inv}",
                     f"--intent={intent}", netns_file=lab.st.mgmt_netns_file)
    assert run.outcomes == {"test_intent::test_intent_names": "failed"}, run.output[-2000:]
    assert "TO webb: no such network in the lab's datastore (networks: app, db-users, mysqldb, web)" \
        in run.messages["test_intent::test_intent_names"]


def _state(lab) -> tuple[dict, dict]:
    """Everything a run could leave: every etcd key (and directory) with its value, and every
    container of every node."""
    with lab.in_mgmt():
        tree = lab.etcd().read("/", recursive=True)
        # Docker's libnetwork keeps an empty endpoint directory per network it has seen an
        # endpoint on (a fresh lab has them too): Docker's state, which the suite leaves alone
        keys = {n.key: _normal(n.key, n.value) if not n.dir else "<dir>"
                for n in tree.get_subtree()
                if n.key and not (n.dir and n.key.startswith("/docker/")
                                  and [x.key for x in n.leaves] == [n.key])}   # empty
    return keys, {node: _containers(lab, node) for node in lab.st.topology.node_names}


def _normal(key: str, value: str) -> str:
    """A block's free list is kept in release order (libcalico appends what is released):
    the same addresses free in another order is the same IPAM state."""
    if "/calico/ipam/v2/assignment/" in key:
        doc = json.loads(value)
        doc["unallocated"] = sorted(doc.get("unallocated") or [])
        return json.dumps(doc, sort_keys=True)
    return value


def _containers(lab, node: str) -> list[tuple[str, str]]:
    with lab.docker(node) as client:    # one list call: no per-container inspect to race with
        return sorted((c["Names"][0].lstrip("/"), c["State"]) for c in client.api.containers(all=True))


def _diff(before: dict, after: dict) -> str:
    return (f"added {sorted(set(after) - set(before))[:10]}, removed {sorted(set(before) - set(after))[:10]}, "
            f"changed {[k for k in before if k in after and before[k] != after[k]][:10]}")


def test_nothing_left_after_a_run(seed, tmp_path):
    lab, inv = seed
    keys, containers = _state(lab)
    run = _inventory_run(lab, tmp_path, inv, "-n", "2")
    assert run.rc == 0, run.output[-3000:]
    keys_after, containers_after = _state(lab)
    assert containers_after == containers
    assert keys_after == keys, _diff(keys, keys_after)


def test_nothing_left_after_ctrl_c_mid_run(seed, tmp_path):
    lab, inv = seed
    keys, containers = _state(lab)
    argv = suites_argv(tmp_path / "interrupted.xml", "suites", f"--inventory={inv}",
                       netns_file=lab.st.mgmt_netns_file)
    run = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, text=True)
    try:
        with contextlib.ExitStack() as stack:
            # frozen the moment its probe workloads show, so the interrupt lands mid-run however
            # loaded the machine is (a fixed delay raced a run that finished first under CI load)
            clients = [stack.enter_context(lab.docker(node)) for node in lab.st.topology.node_names]

            def probing() -> bool:      # the ACL probe workloads exist: the run is mid-way
                return any(c["Names"][0].startswith("/cst-") for client in clients
                           for c in client.api.containers(all=True)) or run.poll() is not None
            proc.wait_until(probing, 120, "the run's probe workloads", 0.1)
            run.send_signal(signal.SIGSTOP)
            assert run.poll() is None, "the run ended before its probe workloads were seen"
            run.send_signal(signal.SIGINT)
            run.send_signal(signal.SIGCONT)
            out, _ = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode != 0 and "KeyboardInterrupt" in out, out[-2000:]
    keys_after, containers_after = _state(lab)
    assert containers_after == containers, out[-2000:]
    assert keys_after == keys, _diff(keys, keys_after)


def test_no_secret_in_report_junit_or_output(seed, tmp_path):
    lab, inv = seed
    password = f"pw-{secrets.token_hex(8)}"
    with_password = _variant(inv, tmp_path, "with-password", password=password)
    html = tmp_path / "report.html"
    run = _inventory_run(lab, tmp_path, with_password, f"--html={html}", "--self-contained-html",
                         "-rA", "suites/bootstrap")
    key_text = open(yaml.safe_load(inv.read_text())["ssh"]["key_file"]).read()
    key_lines = [line for line in key_text.splitlines() if line and "PRIVATE KEY" not in line]
    texts = {"report": html.read_text(), "output": run.output,
             "junit": "".join(p.read_text() for p in tmp_path.glob("junit-*.xml"))}
    assert run.outcomes and texts["report"]
    for name, text in texts.items():
        assert password not in text, f"the inventory password is in the {name}"
        assert "PRIVATE KEY" not in text, f"private key material is in the {name}"
        leaked = [line for line in key_lines if line in text]
        assert not leaked, f"{len(leaked)} line(s) of the private key are in the {name}"


@pytest.mark.parametrize("case", ["wrong-key", "unknown-host-key", "closed-port", "command-timeout"])
def test_ssh_failure_is_one_clear_line(seed, tmp_path, case):
    lab, inv = seed
    if case == "wrong-key":
        other = tmp_path / "other_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
        bad, expect = _variant(inv, tmp_path, case, key_file=str(other)), "authentication failed"
    elif case == "unknown-host-key":
        empty = tmp_path / "known_hosts"
        empty.write_text("")
        bad, expect = _variant(inv, tmp_path, case, known_hosts=str(empty)), "host key unknown"
    elif case == "closed-port":
        bad, expect = _variant(inv, tmp_path, case, port=2222), "connection refused"
    else:
        bad, expect = _variant(inv, tmp_path, case, command_timeout=0.001), "timed out"
    cp = subprocess.run(suites_argv(tmp_path / "x.xml", "suites/bootstrap", f"--inventory={bad}",
                                    netns_file=lab.st.mgmt_netns_file),
                        cwd=ROOT, capture_output=True, text=True, timeout=120)
    err = [line for line in cp.stderr.splitlines() if line.strip()]
    assert cp.returncode == 4 and len(err) == 1 and "Traceback" not in cp.stderr, cp.stderr[-2000:]
    assert expect in err[0] and "ssh node" in err[0], err[0]


def test_provision_cli_dry_run_then_refusal(seed, tmp_path):
    """`python -m lab provision`: the dry run lists what would change and changes nothing; a
    real run on these hosts (no systemd) is one line, before anything is changed."""
    lab, inv = seed
    keys, containers = _state(lab)
    argv = ["nsenter", f"--net={lab.st.mgmt_netns_file}", sys.executable, "-m", "lab",
            "provision", f"--inventory={inv}"]
    dry = subprocess.run([*argv, "--dry-run"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0 and "dry run: nothing was changed" in dry.stdout, dry.stdout + dry.stderr
    assert "node1:" in dry.stdout and "node2:" in dry.stdout
    real = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    err = real.stderr.strip().splitlines()
    assert real.returncode != 0 and len(err) == 1 and "nothing was changed" in err[0], real.stderr
    assert "systemd" in err[0]
    assert _state(lab) == (keys, containers)


@pytest.mark.parametrize("how", ["embedded", "inventory"])
def test_a_second_run_on_the_same_lab_stops_with_one_line(seed, tmp_path, how):
    """Two runs on one lab would fail each other's checks: while one holds the lab's run lock
    (here: this test, through the same RunLock), another stops at once and says who holds it."""
    from fixtures.targets import InventoryTarget
    from fixtures.targets.run_lock import RunLock
    from lab import paths
    lab, inv = seed
    if how == "embedded":
        lock, args, netns_file = f"{paths.RUN}.suites.lock", ["--lab-attach"], None
    else:
        name = yaml.safe_load(inv.read_text())["name"]
        lock = InventoryTarget.lock_path(name)
        args, netns_file = [f"--inventory={inv}"], lab.st.mgmt_netns_file
    held = RunLock(lock, "the lab")
    held.acquire()
    try:
        cp = subprocess.run(suites_argv(tmp_path / "x.xml", "suites/bootstrap", *args,
                                        netns_file=netns_file),
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        held.release()
    err = [line for line in cp.stderr.splitlines() if line.strip()]
    assert cp.returncode == 4 and len(err) == 1, cp.stderr[-2000:]
    assert f"another pytest run (pid {os.getpid()}) is testing" in err[0], err[0]
