"""Each bootstrap check is shown to fail on the fault it exists to catch, and only that.

One seed lab for the module; every fault is planted, the real suite is run against the lab
(`pytest suites/bootstrap --lab-attach`), then the lab is restored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest

from lab import builder, docker_api, image, netns, paths, proc, state
from tests.helpers import lab_cli, run_suites

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def seed_lab():
    up = lab_cli("up")
    assert up.returncode == 0, up.stderr
    yield state.load()
    assert lab_cli("down").returncode == 0


def _bootstrap(tmp_path):
    return run_suites(tmp_path, "suites/bootstrap", "--lab-attach")


def test_healthy_lab_passes_every_bootstrap_check(seed_lab, tmp_path):
    run = _bootstrap(tmp_path)
    assert run.rc == 0 and run.failed() == set(), run.output
    assert len(run.outcomes) >= 11


# -- faults ---------------------------------------------------------------------------------

def _stop_dockerd(st, node):
    proc.stop([st.daemons[f"dockerd@{node}"]])


def _remove_image(st, node):
    with docker_api.connect(paths.NodePaths(node).docker_sock) as c:
        c.images.remove(image.IMAGE, force=True)


def _restore_image(st, node):
    with docker_api.connect(paths.NodePaths(node).docker_sock) as c:
        image.import_image(c.api, paths.IMAGE_TAR)


def _stop_etcd(st, node):
    proc.stop([st.daemons["etcd"]])


def _restart_dockerd(cluster_store=True):
    def restart(st, node):
        _stop_dockerd(st, node)
        builder.start_dockerd(st, node, cluster_store=cluster_store)
    return restart


def _set_ip_forward(value):
    def plant(st, node):
        p = paths.NodePaths(node)
        proc.run(netns.nsenter(["sysctl", "-qw", f"net.ipv4.ip_forward={value}"], net=p.netns_file))
    return plant


@dataclass
class Fault:
    name: str
    node: str
    plant: Callable
    restore: Callable
    failing: set[str]          # exactly these tests must fail …
    message: str               # … each saying this


FAULTS = [
    Fault("dockerd-stopped", "node2", _stop_dockerd, lambda st, n: builder.start_dockerd(st, n),
          {"test_docker::test_docker_cluster_store[node2]",
           "test_docker::test_docker_cluster_advertise[node2]",
           "test_docker::test_test_image_present[node2]"},
          "node2: dockerd does not answer"),
    Fault("dockerd-without-cluster-store", "node1", _restart_dockerd(False), _restart_dockerd(),
          {"test_docker::test_docker_cluster_store[node1]",
           "test_docker::test_docker_cluster_advertise[node1]"},
          "node1: docker info shows cluster"),
    Fault("image-removed", "node1", _remove_image, _restore_image,
          {"test_docker::test_test_image_present[node1]"},
          "node1: image calico-net-test:1.0 is missing"),
    Fault("etcd-stopped", "node1", _stop_etcd, lambda st, n: builder.start_etcd(st),
          {"test_etcd::test_etcd_serves_v2_api",
           "test_etcd::test_etcd_reachable_from_node[node1]",
           "test_etcd::test_etcd_reachable_from_node[node2]"},
          "etcd at http://192.168.20.1:2379"),
    Fault("ip-forward-off", "node2", _set_ip_forward(0), _set_ip_forward(1),
          {"test_host::test_ip_forward[node2]"},
          "node2: net.ipv4.ip_forward is 0, expected 1"),
]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_fails_exactly_the_intended_checks(seed_lab, tmp_path, fault):
    st = state.load()
    fault.plant(st, fault.node)
    try:
        run = _bootstrap(tmp_path)
    finally:
        fault.restore(st, fault.node)
    assert run.failed() == fault.failing, f"{fault.name}: wrong tests failed\n{run.output}"
    for test_id, msg in run.messages.items():
        assert fault.message in msg, f"{test_id}: message does not explain the fault:\n{msg}"
    assert _bootstrap(tmp_path).failed() == set(), f"{fault.name}: the lab was not restored"
