"""Docker on every node: reachable, with the tutorial's cluster store, and the test image."""
import pytest

from lab.image import IMAGE


def _docker_info(lab, observe, node):
    seen = observe(node)
    if seen.docker_error or seen.docker_info is None:
        pytest.fail(f"{node}: dockerd does not answer at {lab.docker_url(node)} "
                    f"({seen.docker_error}); is docker running on {node}?", pytrace=False)
    return seen.docker_info


def test_docker_cluster_store(lab, observe, node):
    """override.conf's --cluster-store=etcd://<etcd> is what makes calico networks global."""
    info = _docker_info(lab, observe, node)
    expected = f"etcd://{lab.etcd_authority}"
    seen = info.cluster_store or "none"
    assert seen == expected, (
        f"{node}: docker info shows cluster store {seen!r}, expected {expected!r}: dockerd must "
        f"run with --cluster-store={expected} (override.conf), then restart docker")


def test_docker_cluster_advertise(lab, observe, node):
    """Docker advertises the node's own fabric address to the other engines."""
    info = _docker_info(lab, observe, node)
    ip = lab.topology.node(node).ip
    seen = info.cluster_advertise or "none"
    assert seen.split(":")[0] == ip, (
        f"{node}: docker info shows cluster advertise {seen!r}, expected {ip}:<port>")


def test_test_image_present(lab, observe, node):
    """The tutorial builds calico-net-test:1.0 (nc, telnet) on every node."""
    _docker_info(lab, observe, node)
    if IMAGE not in observe(node).docker_images:
        pytest.fail(f"{node}: image {IMAGE} is missing: build or import it on {node} "
                    "(`docker build -t calico-net-test:1.0 .` in the tutorial)", pytrace=False)
