"""Checks on one running seed lab, through the real CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lab import paths, state, teardown
from tests.helpers import ROOT, lab_cli, machine_snapshot, one_line_error

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def running_lab():
    """One seed lab shared by the read-only checks below."""
    before = machine_snapshot()
    up = lab_cli("up")
    assert up.returncode == 0, up.stderr
    yield state.load()
    down = lab_cli("down")
    assert down.returncode == 0, down.stderr
    assert machine_snapshot() == before


def _netns_run(ns: str, *argv: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                          check=True).stdout


def test_no_lab_namespace_has_a_default_route(running_lab):
    names = [os.path.basename(f) for f in teardown.lab_netns_files()]
    assert len(names) == len(running_lab.topology.nodes) + 2   # + fabric + management
    routes = {ns: json.loads(_netns_run(ns, "ip", "-j", "route", "show", "default"))
              for ns in names}
    assert all(r == [] for r in routes.values()), f"default routes found: {routes}"


def test_nodes_have_their_hostname_address_and_docker(running_lab):
    for node in running_lab.topology.nodes:
        cp = lab_cli("exec", node.name, "--", "sh", "-c",
                     "hostname; ip -j addr show dev eth0; docker info --format '{{.Name}}'")
        assert cp.returncode == 0, cp.stderr
        hostname, addr_json, docker_name = cp.stdout.splitlines()
        addrs = [a["local"] for a in json.loads(addr_json)[0]["addr_info"] if a["family"] == "inet"]
        assert (hostname, addrs, docker_name) == (node.name, [node.ip], node.name)


def test_root_namespace_sees_no_lab_link(running_lab):
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout)
    lab_links = [link["ifname"] for link in links
                 if link["ifname"].startswith(("v-", paths.FABRIC_BRIDGE, "cali"))]
    assert lab_links == []


def test_status_lists_every_daemon_running(running_lab):
    cp = lab_cli("status")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    for key in running_lab.daemons:
        assert any(line.startswith(key) and "running" in line for line in cp.stdout.splitlines()), cp.stdout
    assert "cluster store etcd://192.168.20.1:2379" in cp.stdout
    assert "etcd: 3." in cp.stdout


def test_shell_environment_matches_the_tutorials_bashrc(running_lab):
    cp = lab_cli("exec", "node2", "--", "sh", "-c", 'echo "$ETCD_AUTHORITY $DOCKER_HOST"')
    assert cp.stdout.split() == ["192.168.20.1:2379", "unix:///var/run/docker.sock"]


def test_exec_passes_the_exit_code_through(running_lab):
    assert lab_cli("exec", "node1", "--", "sh", "-c", "exit 7").returncode == 7


def test_exec_unknown_node_is_one_clear_error(running_lab):
    err = one_line_error(lab_cli("exec", "node9", "--", "true"))
    assert "unknown node 'node9'" in err and "node1, node2" in err


def test_up_while_up_refuses_and_leaves_the_lab_alone(running_lab):
    err = one_line_error(lab_cli("up"))
    assert "already up" in err and "python -m lab down" in err
    assert all(d.alive() for d in running_lab.daemons.values())


def test_shell_is_a_node_shell_with_the_tutorials_environment(running_lab):
    cp = subprocess.run([sys.executable, "-m", "lab", "shell", "node2"], cwd=ROOT, text=True,
                        capture_output=True, timeout=30,
                        input='hostname; echo "E=$ETCD_AUTHORITY"; docker info --format "D={{.Name}}"\nexit\n')
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.split() == ["node2", "E=192.168.20.1:2379", "D=node2"]
