"""Each bootstrap check is shown to fail on the fault it exists to catch, and only there.

One seed lab for the module; every fault is planted, the real suite is run against the lab
(`pytest suites/bootstrap --lab-attach`), then the lab is restored and must pass again.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from lab import builder, image, netns, paths, proc
from tests.helpers import lab_cli, run_suites, wait_healed
from tests.lab import faults as f

pytestmark = pytest.mark.lab
NETWORKS = ("app", "db-users", "mysqldb", "web")


@pytest.fixture(scope="module")
def lab():
    up = lab_cli("up")
    assert up.returncode == 0, up.stderr
    yield f.Lab()
    assert lab_cli("down").returncode == 0


def _bootstrap(tmp_path, *only):
    return run_suites(tmp_path, *(only or ("suites/bootstrap",)), "--lab-attach")


def test_healthy_lab_passes_every_bootstrap_check(lab, tmp_path):
    run = _bootstrap(tmp_path)
    assert run.rc == 0 and run.failed() == set(), run.output
    assert len(run.outcomes) >= 25


def docker_checks(node: str) -> set[str]:
    """Everything bootstrap asks a node's Docker: what a dead dockerd takes down with it."""
    return ({f"test_docker::test_docker_cluster_store[{node}]",
             f"test_docker::test_docker_cluster_advertise[{node}]",
             f"test_docker::test_test_image_present[{node}]",
             f"test_calico_node::test_calico_container_running[{node}-calico-node]",
             f"test_calico_node::test_calico_container_running[{node}-calico-libnetwork]",
             f"test_calico_node::test_plugin_socket[{node}]",
             f"test_calico_node::test_calicoctl_status[{node}]",
             f"test_agents::test_confd_rendered_the_bgp_keys[{node}]"}
            | {f"test_agents::test_agent_running[{node}-{a}]" for a in ("felix", "confd", "bird", "libnetwork")}
            | {f"test_datastore::test_calico_network_global_on_every_node[{node}-{n}]" for n in NETWORKS})


@dataclass
class Fault:
    name: str
    plant: object
    restore: object
    failing: set[str]
    says: dict[str, str]          # test id -> words its failure message must contain


def _faults(lab: f.Lab) -> list[Fault]:
    st = lab.st

    def set_forward(value):
        return lambda: proc.run(netns.nsenter(["sysctl", "-qw", f"net.ipv4.ip_forward={value}"],
                                              net=paths.NodePaths("node2").netns_file))

    def image_op(op):
        def run():
            with lab.docker("node1") as c:
                if op == "remove":
                    c.images.remove(image.IMAGE, force=True)
                else:
                    image.import_image(c.api, paths.IMAGE_TAR)
        return run

    return [
        Fault("dockerd-stopped", lambda: proc.stop([st.daemons["dockerd@node2"]]),
              lambda: (builder.start_dockerd(st, "node2"), f.revive_workloads(lab, "node2")),
              docker_checks("node2"),
              {"test_docker::test_docker_cluster_store[node2]": "node2: dockerd does not answer"}),
        Fault("dockerd-without-cluster-store",
              lambda: f.restart_dockerd(lab, "node1", cluster_store=False),
              lambda: (f.restart_dockerd(lab, "node1", cluster_store=True), f.revive_workloads(lab, "node1")),
              {"test_docker::test_docker_cluster_store[node1]", "test_docker::test_docker_cluster_advertise[node1]"}
              | {f"test_datastore::test_calico_network_global_on_every_node[node1-{n}]" for n in NETWORKS},
              {"test_docker::test_docker_cluster_store[node1]": "docker info shows cluster store 'none'"}),
        Fault("image-removed", image_op("remove"), image_op("import"),
              {"test_docker::test_test_image_present[node1]"},
              {"test_docker::test_test_image_present[node1]": "node1: image calico-net-test:1.0 is missing"}),
        Fault("etcd-stopped", lambda: proc.stop([st.daemons["etcd"]]), lambda: builder.start_etcd(st),
              {"test_etcd::test_etcd_serves_v2_api", "test_etcd::test_etcd_reachable_from_node[node1]",
               "test_etcd::test_etcd_reachable_from_node[node2]", "test_datastore::test_datastore_ready",
               "test_datastore::test_at_least_one_pool",
               "test_datastore::test_host_registered_with_its_address[node1]",
               "test_datastore::test_host_registered_with_its_address[node2]",
               "test_calico_node::test_calicoctl_status[node1]", "test_calico_node::test_calicoctl_status[node2]"},
              {"test_etcd::test_etcd_serves_v2_api": "etcd at http://192.168.20.1:2379",
               "test_etcd::test_etcd_reachable_from_node[node2]": "cannot get a healthy answer from etcd"}),
        Fault("ip-forward-off", set_forward(0), set_forward(1), {"test_host::test_ip_forward[node2]"},
              {"test_host::test_ip_forward[node2]": "node2: net.ipv4.ip_forward is 0, expected 1"}),
    ]


NAMES = ["dockerd-stopped", "dockerd-without-cluster-store", "image-removed", "etcd-stopped", "ip-forward-off"]


@pytest.mark.parametrize("name", NAMES)
def test_fault_fails_exactly_the_intended_checks(lab, tmp_path, name):
    fault = next(x for x in _faults(lab) if x.name == name)
    fault.plant()
    try:
        run = _bootstrap(tmp_path)
    finally:
        fault.restore()
    assert run.failed() == fault.failing, (f"{name}: failed {sorted(run.failed())}, expected "
                                           f"{sorted(fault.failing)}\n{run.output[-3000:]}")
    for test_id, words in fault.says.items():
        assert words in run.messages[test_id], f"{test_id} does not explain {name}:\n{run.messages[test_id]}"
    wait_healed(lambda *only: _bootstrap(tmp_path, *only), run, 60, f"the lab to recover from {name}")
