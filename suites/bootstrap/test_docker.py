"""Docker on every node: reachable, with the tutorial's cluster store, and the test image."""
import pytest

from lab import docker_api
from lab.image import IMAGE


def _docker_info(lab, node):
    try:
        return lab.docker(node).info()
    except docker_api.ERRORS as exc:
        pytest.fail(f"{node}: dockerd does not answer at {lab.docker_url(node)} "
                    f"({type(exc).__name__}); is docker running on {node}?", pytrace=False)


def test_docker_cluster_store(lab, node):
    """override.conf's --cluster-store=etcd://<etcd> is what makes calico networks global."""
    info = _docker_info(lab, node)
    expected = f"etcd://{lab.etcd_authority}"
    seen = info.get("ClusterStore") or "none"
    assert seen == expected, (
        f"{node}: docker info shows cluster store {seen!r}, expected {expected!r}: dockerd must "
        f"run with --cluster-store={expected} (override.conf), then restart docker")


def test_docker_cluster_advertise(lab, node):
    """Docker advertises the node's own fabric address to the other engines."""
    info = _docker_info(lab, node)
    ip = lab.topology.node(node).ip
    seen = info.get("ClusterAdvertise") or "none"
    assert seen.split(":")[0] == ip, (
        f"{node}: docker info shows cluster advertise {seen!r}, expected {ip}:<port>")


def test_test_image_present(lab, node):
    """The tutorial builds calico-net-test:1.0 (nc, telnet) on every node."""
    _docker_info(lab, node)
    try:
        lab.docker(node).images.get(IMAGE)
    except docker_api.NotFound:
        pytest.fail(f"{node}: image {IMAGE} is missing: build or import it on {node} "
                    "(`docker build -t calico-net-test:1.0 .` in the tutorial)", pytrace=False)
