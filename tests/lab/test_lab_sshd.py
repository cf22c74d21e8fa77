"""The sshd on every node of the embedded lab, reached as a real lab is: paramiko from the
management namespace, as root, with the lab's own client key and known_hosts.

One `up --bare` serves the session checks; the last tests take the lab down after a crash
and normally, and check that no sshd of the lab (listener or session) survives either.
"""
from __future__ import annotations

import json
import os
import socket
import stat

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lab import netns, paths, sshd, state, teardown
from lab.topology import load_topology
from lab.transport import LAB_BIN
from tests.helpers import lab_cli

pytestmark = pytest.mark.lab
SEED = load_topology("seed")


def _connect(st: state.LabState, ip: str, key_file: str | None = None,
             known_hosts: str | None = None) -> paramiko.SSHClient:
    """root@ip from the management namespace, strict about the host key."""
    material = sshd.lab_ssh_material(st)
    client = paramiko.SSHClient()
    client.load_host_keys(known_hosts or material.known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with netns.inside(st.mgmt_netns_file):
        try:
            client.connect(ip, sshd.SSH_PORT, username="root",
                           key_filename=key_file or material.key_file,
                           look_for_keys=False, allow_agent=False, timeout=5, auth_timeout=5)
        except BaseException:
            client.close()
            raise
    return client


def _run(client: paramiko.SSHClient, command: str) -> str:
    _, out, err = client.exec_command(command, timeout=20)
    stdout, stderr = out.read().decode(), err.read().decode()
    rc = out.channel.recv_exit_status()
    assert rc == 0, f"`{command}` exited {rc}: {stderr}"
    return stdout


def _net_inodes() -> set[int]:
    return {os.stat(f).st_ino for f in teardown.lab_netns_files()}


def _lab_sshds(net_inodes: set[int]) -> list[int]:
    """Live sshd processes of this lab: run with one of its configs, or inside one of its
    network namespaces (the per-connection ones)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "sshd":
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            net = os.stat(f"/proc/{pid}/ns/net").st_ino
        except OSError:
            continue
        if f"{paths.SSH_DIR}/".encode() in cmdline or net in net_inodes:
            found.append(int(pid))
    return found


@pytest.fixture(scope="module")
def bare_lab():
    up = lab_cli("up", "--bare")
    assert up.returncode == 0, up.stdout + up.stderr
    yield state.load()
    if teardown.leftovers():   # the last tests take it down; this is for when they failed
        lab_cli("down")


@pytest.mark.parametrize("node", SEED.node_names)
def test_a_session_is_a_root_shell_on_that_node(bare_lab, node):
    ip = bare_lab.topology.node(node).ip
    client = _connect(bare_lab, ip)
    try:
        out = _run(client, "hostname; ip -j addr show dev eth0; "
                           "docker info --format '{{.Name}}|{{.DockerRootDir}}'; "
                           'echo "$ETCD_AUTHORITY|$DOCKER_HOST"; id -u; '
                           "command -v calicoctl docker; "
                           "calicoctl --help | grep -c ETCD_AUTHORITY; "
                           "stat -c '%a %U %d' /run/sshd; stat -c %d /run")
    finally:
        client.close()
    (hostname, addr_json, docker, env, uid, calicoctl, docker_cli, help_hits, privsep,
     run_dev) = out.splitlines()
    addrs = [a["local"] for a in json.loads(addr_json)[0]["addr_info"] if a["family"] == "inet"]
    assert (hostname, addrs, uid) == (node, [ip], "0")
    # sshd's privsep chroot lives on the node's own /run (a tmpfs of its mount namespace)
    assert privsep == f"755 root {run_dev}" and int(run_dev) != os.stat("/run").st_dev
    # DOCKER_HOST=unix:///var/run/docker.sock reaches this node's own dockerd
    assert docker == f"{node}|{paths.NodePaths(node).data_root}"
    assert env == f"{bare_lab.topology.etcd_authority}|unix:///var/run/docker.sock"
    assert (calicoctl, docker_cli) == (f"{LAB_BIN}/calicoctl", "/usr/bin/docker")
    assert int(help_hits) > 0, "calicoctl --help did not run in the session"


@pytest.mark.parametrize("node", SEED.node_names)
def test_sshd_listens_on_the_fabric_address_only(bare_lab, node):
    client = _connect(bare_lab, bare_lab.topology.node(node).ip)
    try:
        listening = _run(client, "ss -Htln 'sport = :22'").split()
    finally:
        client.close()
    assert [w for w in listening if w.endswith(":22")] == [f"{bare_lab.topology.node(node).ip}:22"]


def test_material_names_every_node_and_keys_are_private(bare_lab):
    m = sshd.lab_ssh_material(bare_lab)
    topo = bare_lab.topology
    assert m.hosts == {n.name: (n.ip, 22) for n in topo.nodes}
    with open(m.known_hosts) as f:
        lines = [line.split() for line in f]
    assert [line[:2] for line in lines] == [[n.ip, "ssh-ed25519"] for n in topo.nodes]
    assert topo.management.ip not in {line[0] for line in lines}
    assert len({line[2] for line in lines}) == len(topo.nodes), "nodes share a host key"
    private = [m.key_file, sshd.AUTHORIZED_KEYS] + [sshd.host_key_file(n) for n in topo.node_names]
    assert all(f.startswith(f"{paths.SSH_DIR}/") for f in private + [m.known_hosts])
    assert {f: stat.S_IMODE(os.stat(f).st_mode) for f in private} == {f: 0o600 for f in private}


def test_each_node_presents_its_own_host_key(bare_lab, tmp_path):
    m = sshd.lab_ssh_material(bare_lab)
    seen = {}
    for node, (ip, _port) in m.hosts.items():
        client = _connect(bare_lab, ip)   # RejectPolicy: a key not in known_hosts fails here
        seen[node] = client.get_transport().get_remote_server_key().get_base64()
        client.close()
    assert len(set(seen.values())) == len(seen)
    # node2's key filed under node1's address: the client must refuse node1
    ip1, _ = m.hosts["node1"]
    swapped = tmp_path / "known_hosts"
    swapped.write_text(f"{ip1} ssh-ed25519 {seen['node2']}\n")
    with pytest.raises(paramiko.BadHostKeyException):
        _connect(bare_lab, ip1, known_hosts=str(swapped))


def test_a_wrong_key_or_a_password_is_refused(bare_lab, tmp_path):
    stranger = tmp_path / "id_ed25519"
    stranger.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()))
    stranger.chmod(0o600)
    ip = bare_lab.topology.node("node1").ip
    with pytest.raises(paramiko.AuthenticationException):
        _connect(bare_lab, ip, key_file=str(stranger))
    # public key is the only way in (no password, no keyboard-interactive)
    with netns.inside(bare_lab.mgmt_netns_file):
        sock = socket.create_connection((ip, sshd.SSH_PORT), timeout=5)
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=5)
        with pytest.raises(paramiko.BadAuthenticationType) as refused:
            transport.auth_none("root")
        assert refused.value.allowed_types == ["publickey"]
    finally:
        transport.close()


def test_up_after_a_crash_sweeps_the_old_sshds_and_their_sessions(bare_lab):
    old_daemons = [d for k, d in bare_lab.daemons.items() if k.startswith("sshd@")]
    assert len(old_daemons) == len(bare_lab.topology.nodes)
    old_inodes = _net_inodes()
    busy = _connect(bare_lab, bare_lab.topology.node("node1").ip)
    busy.exec_command("sleep 600")
    try:
        assert len(_lab_sshds(old_inodes)) > len(old_daemons)   # listeners + the session
        with open(paths.STATE_FILE, "w") as f:
            f.write("{not json")   # the writer died mid-save
        again = lab_cli("up", "--bare")
    finally:
        busy.close()
    assert again.returncode == 0, again.stdout + again.stderr
    assert "cleaning up the leftovers" in again.stdout
    assert not any(d.alive() for d in old_daemons)
    st = state.load()
    new_sshds = sorted(st.daemons[sshd.daemon_key(n)].pid for n in st.topology.node_names)
    assert _lab_sshds(old_inodes) == new_sshds
    client = _connect(st, st.topology.node("node2").ip)   # the new lab's new keys
    try:
        assert _run(client, "hostname").strip() == "node2"
    finally:
        client.close()


def test_down_stops_every_sshd_and_leaves_nothing():
    st = state.load()
    assert st is not None, "the previous test left no lab up"
    daemons, inodes = [d for k, d in st.daemons.items() if k.startswith("sshd@")], _net_inodes()
    down = lab_cli("down")
    assert down.returncode == 0 and "nothing left behind" in down.stdout, down.stdout + down.stderr
    assert "leftover" not in down.stdout, f"sshd not stopped by its state entry: {down.stdout}"
    assert not any(d.alive() for d in daemons)
    assert _lab_sshds(inodes) == []
    assert teardown.leftovers() == [] and not os.path.exists(paths.SSH_DIR)


def test_down_with_an_unreadable_state_finds_the_sshds():
    up = lab_cli("up", "--bare")
    assert up.returncode == 0, up.stdout + up.stderr
    daemons = [d for k, d in state.load().daemons.items() if k.startswith("sshd@")]
    inodes = _net_inodes()
    with open(paths.STATE_FILE, "w") as f:
        f.write("")
    down = lab_cli("down")
    assert down.returncode == 0 and "nothing left behind" in down.stdout, down.stdout + down.stderr
    assert not any(d.alive() for d in daemons)
    assert _lab_sshds(inodes) == [] and teardown.leftovers() == []
