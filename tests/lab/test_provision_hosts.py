"""lab/provision_hosts.py against the embedded seed lab, for real.

The nodes share this machine's /etc, /usr and /root (only /run, /etc/docker and /var/log
are their own) and have no systemd, so no real run may write the tutorial's files there:
the dry run is checked in full (through the lab transport and over SSH from an inventory),
real runs are checked to refuse before any change, files are really written only below a
scratch root in a node's private /run tmpfs, and `calicoctl node` really runs where
calico-node was stopped. The last test changes the lab; it comes last.
"""
from __future__ import annotations

import os

import pytest
import yaml

from lab import netns, provision_hosts as ph, sshd, state
from lab.errors import LabError
from lab.transport import lab_hosts
from tests.helpers import lab_cli

pytestmark = pytest.mark.lab
SCRATCH = "/run/provision-test"   # inside a node: its private /run tmpfs
# what the plan reads on this machine (through the nodes' shared /etc, /usr, /root)
MACHINE_FILES = (ph.ETCD_CONF, ph.DOCKER_SOCKET, ph.DOCKER_OVERRIDE, ph.BASHRC,
                 *(f"{ph.UNIT_DIR}/{u}.service" for u in ph.CALICO_UNITS))


@pytest.fixture(scope="module")
def lab():
    up = lab_cli("up")
    assert up.returncode == 0, up.stdout + up.stderr
    st = state.load()
    yield st, lab_hosts(st.topology)
    down = lab_cli("down")
    assert down.returncode == 0, down.stderr


def target_of(topo) -> ph.ProvisionTarget:
    return ph.ProvisionTarget(tuple((n.name, n.ip, tuple(n.roles)) for n in topo.nodes),
                              topo.etcd.node, topo.etcd_authority)


def machine_files() -> dict[str, tuple[int, int, bytes] | None]:
    def one(path):
        try:
            st = os.stat(path)
            with open(path, "rb") as f:
                return st.st_mode, st.st_mtime_ns, f.read()
        except FileNotFoundError:
            return None
    return {p: one(p) for p in MACHINE_FILES}


def containers(hosts) -> dict[str, str]:
    return {n: hosts[n].run(["docker", "ps", "--format", "{{.Names}} {{.ID}}"]).stdout
            for n in ("node1", "node2")}


def per_host(lines: list[str]) -> dict[str, list[str]]:
    out, host = {}, None
    for line in lines:
        if line.endswith(":") and not line.startswith(" "):
            host = line[:-1]
            out[host] = []
        elif host and line.startswith("  ") and not line.startswith("    "):
            out[host].append(line.split()[0] + " " + line.strip().split(None, 1)[1])
    return out


def test_dry_run_shows_per_node_what_it_would_do_and_changes_nothing(lab):
    st, hosts = lab
    before, running = machine_files(), containers(hosts)
    lines: list[str] = []
    summary = ph.run(ph.plan(target_of(st.topology), hosts), True, lines.append)
    text = "\n".join(lines)
    rows = per_host(lines)
    assert list(rows) == ["node1", "node2"]
    # etcd only where it runs; the tutorial's two lines as a diff against the current file
    assert any(r.startswith("change etcd client URLs: write /etc/etcd/etcd.conf") for r in rows["node1"])
    assert not any("etcd.conf" in r or "etcd.service" in r for r in rows["node2"])
    assert '+ETCD_LISTEN_CLIENT_URLS="http://192.168.20.1:2379"' in text
    # Docker's override on both, with the reload and restart it causes
    for node in ("node1", "node2"):
        assert f"change Docker's cluster store: write {ph.DOCKER_OVERRIDE}" in rows[node]
        assert any(r.startswith("change systemd has read Docker's units: $ systemctl daemon-reload  "
                                f"[after {ph.DOCKER_SOCKET}, {ph.DOCKER_OVERRIDE} changes]")
                   for r in rows[node])
    assert ("+ExecStart=/usr/bin/dockerd -H unix:///var/run/docker.sock "
            "--cluster-store=etcd://192.168.20.1:2379") in text
    # calico-node already runs and the test image is there: both skipped, said so
    for node, ip in (("node1", "192.168.20.1"), ("node2", "192.168.20.2")):
        assert ("ok calico-node and calico-libnetwork running  (skips $ env "
                f"ETCD_AUTHORITY=192.168.20.1:2379 calicoctl node --ip={ip} --libnetwork)") in rows[node]
        assert "ok test image calico-net-test:1.0  (skips $ docker build -t calico-net-test:1.0 -)" in rows[node]
        assert f"change calico-node.service: write {ph.UNIT_DIR}/calico-node.service" in rows[node]
    assert lines[0].startswith("a real run would refuse: node1: systemd is not running")
    assert lines[-1] == str(summary) and summary.dry_run and summary.changed and summary.satisfied
    assert machine_files() == before and containers(hosts) == running


def test_dry_run_over_ssh_from_an_inventory(lab, tmp_path):
    """The CLI's path: an inventory, SSH hosts (the lab's sshd), from the management host."""
    st, hosts = lab
    material = sshd.lab_ssh_material(st)
    inventory = tmp_path / "lab.yaml"
    inventory.write_text(yaml.safe_dump({
        "version": 1, "name": "provlab",
        "ssh": {"user": "root", "key_file": material.key_file, "known_hosts": material.known_hosts,
                "connect_timeout": 5},
        "etcd": {"endpoints": [st.topology.etcd_url], "host": st.topology.etcd.node},
        "hosts": {n.name: {"address": n.ip} for n in st.topology.nodes}}))
    via_ssh: list[str] = []
    with netns.inside(st.mgmt_netns_file):
        assert ph.main_provision(str(inventory), True, via_ssh.append) == 0
    local: list[str] = []
    ph.run(ph.plan(target_of(st.topology), hosts), True, local.append)
    # the same plan either way; only the embedded-lab guard is the lab transport's own
    assert per_host(via_ssh) == per_host(local)
    assert "embedded-lab node" not in via_ssh[0] and "embedded-lab node" in local[0]

    before = machine_files()
    with netns.inside(st.mgmt_netns_file), pytest.raises(LabError) as err:
        ph.main_provision(str(inventory), False, via_ssh.append)
    assert str(err.value) == ("cannot provision, nothing was changed: node1: systemd is not running "
                              "(no /run/systemd/system); node2: systemd is not running (no "
                              "/run/systemd/system) (the tutorial's hosts are systemd hosts, CentOS 7)")
    assert machine_files() == before


def test_real_run_without_systemd_is_refused_in_one_line_before_any_change(lab):
    st, hosts = lab
    before, running = machine_files(), containers(hosts)
    logged: list[str] = []
    with pytest.raises(LabError) as err:
        ph.run(ph.plan(target_of(st.topology), hosts), False, logged.append)
    message = str(err.value)
    assert "\n" not in message and logged == []
    assert message.startswith("cannot provision, nothing was changed: node1: systemd is not running")
    assert "; node2: systemd is not running" in message and message.count("CentOS 7") == 1
    assert machine_files() == before and containers(hosts) == running


def test_files_below_a_scratch_root_are_written_once_then_nothing_to_change(lab):
    st, hosts = lab
    target = target_of(st.topology)
    node1 = hosts["node1"]
    # a CentOS-like etcd.conf (mode 0600) whose other lines must survive
    ph.write_text(node1, f"{SCRATCH}{ph.ETCD_CONF}",
                  'ETCD_NAME="default"\nETCD_LISTEN_CLIENT_URLS="http://localhost:2379"\n')
    node1.run(["chmod", "600", f"{SCRATCH}{ph.ETCD_CONF}"])
    try:
        files = lambda: [s for s in ph.plan(target, hosts, root=SCRATCH)  # noqa: E731
                         if isinstance(s, ph.FileStep)]
        logged: list[str] = []
        first = ph.run(files(), False, logged.append, require_systemd=False)
        assert len(first.changed) == 11 and first.satisfied == []
        assert logged[0] == f"node1: etcd client URLs: {SCRATCH}{ph.ETCD_CONF}"
        assert ph.read_text(node1, f"{SCRATCH}{ph.ETCD_CONF}") == (
            'ETCD_NAME="default"\nETCD_LISTEN_CLIENT_URLS="http://192.168.20.1:2379"\n'
            'ETCD_ADVERTISE_CLIENT_URLS="http://192.168.20.1:2379"\n')
        assert node1.run(["stat", "-c", "%a", f"{SCRATCH}{ph.ETCD_CONF}"]).stdout.strip() == "600"
        assert ph.read_text(hosts["node2"], f"{SCRATCH}{ph.DOCKER_OVERRIDE}") == \
            ph.docker_override("192.168.20.1:2379")
        assert not os.path.exists(SCRATCH)   # the node's /run, not this machine's

        again: list[str] = []
        second = ph.run(files(), False, again.append, require_systemd=False)
        assert second.changed == [] and again == ["nothing to change: all 11 step(s) already satisfied"]
        shown: list[str] = []
        ph.run(files(), True, shown.append, require_systemd=False)
        assert shown[-1] == "nothing to change: all 11 step(s) already satisfied"
        assert not any(line.startswith("  change") for line in shown)

        # one file drifts: exactly that step runs again
        ph.write_text(hosts["node2"], f"{SCRATCH}{ph.UNIT_DIR}/calico-node.service", "[Unit]\n")
        third = ph.run(files(), False, lambda _: None, require_systemd=False)
        assert [(s.host.name, s.title) for s in third.changed] == [("node2", "calico-node.service")]
    finally:
        for node in ("node1", "node2"):
            hosts[node].run(["rm", "-rf", "--", SCRATCH])


def test_calicoctl_node_runs_only_where_calico_node_is_not_running(lab):
    """Changes the lab: calico-node stopped and the test image removed on node2."""
    st, hosts = lab
    node2 = hosts["node2"]
    target = target_of(st.topology)
    # workloads first: leaving a calico network needs calico-libnetwork
    workloads = node2.run(["docker", "ps", "-aq", "--filter", "ancestor=calico-net-test:1.0"]).stdout.split()
    assert not workloads or node2.run(["docker", "rm", "-f", *workloads], timeout=60).ok
    assert node2.run(["docker", "rmi", "calico-net-test:1.0"]).ok
    assert node2.run(["docker", "stop", "calico-node", "calico-libnetwork"], timeout=60).ok

    def steps(*kinds):
        return [s for s in ph.plan(target, hosts) if s.title.startswith(kinds)]
    shown: list[str] = []
    ph.run(steps("calico-node and", "test image"), True, shown.append, require_systemd=False)
    assert shown[shown.index("node2:") + 1].startswith(
        "  change  calico-node and calico-libnetwork running: $ env ETCD_AUTHORITY=")
    assert "              | FROM centos" in shown
    assert ("            ! cannot yet: the Dockerfile's base image centos is not present and "
            "provisioning does not pull: `docker pull centos` (or `docker load` it) on node2, "
            "then run again") in shown
    # the image cannot be built here (no centos base image, no pulling): refused, and
    # calicoctl node, due before it, has not run either
    with pytest.raises(LabError) as err:
        ph.run(steps("calico-node and", "test image"), False, lambda _: None, require_systemd=False)
    assert str(err.value) == (
        "cannot provision, nothing was changed: node2: the Dockerfile's base image centos is not "
        "present and provisioning does not pull: `docker pull centos` (or `docker load` it) on "
        "node2, then run again")
    assert not ph.containers_running(node2, ph.CALICO_UNITS)

    logged: list[str] = []
    first = ph.run(steps("calico-node and"), False, logged.append, require_systemd=False)
    assert [s.host.name for s in first.changed] == ["node2"]
    assert [s.host.name for s in first.satisfied] == ["node1"]
    assert logged[0] == ("node2: calico-node and calico-libnetwork running: $ env "
                         "ETCD_AUTHORITY=192.168.20.1:2379 calicoctl node --ip=192.168.20.2 --libnetwork")
    assert ph.containers_running(node2, ph.CALICO_UNITS)
    second = ph.run(steps("calico-node and"), False, lambda _: None, require_systemd=False)
    assert second.changed == [] and len(second.satisfied) == 2
