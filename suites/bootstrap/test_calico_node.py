"""calico-node and the libnetwork driver on every host, as `calicoctl node --libnetwork` leaves them."""
import pytest

CONTAINERS = ("calico-node", "calico-libnetwork")
PLUGIN_SOCKET = "/run/docker/plugins/calico.sock"


@pytest.mark.parametrize("container", CONTAINERS)
def test_calico_container_running(observe, calico_host, container):
    """Running, restarted always (so it comes back with Docker), on the host's network."""
    node, seen = calico_host, observe(calico_host)
    if seen.docker_error:
        pytest.fail(f"{node}: dockerd does not answer ({seen.docker_error})", pytrace=False)
    c = seen.container(container)
    if c is None:
        pytest.fail(f"{node}: no {container} container: run `calicoctl node --ip=<ip> --libnetwork` "
                    f"on {node}", pytrace=False)
    found = (c.state, c.restart_policy, c.network_mode)
    assert found == ("running", "always", "host"), (
        f"{node}: {container} is {found[0]} with restart policy {found[1]} on network {found[2]}; "
        "expected running, always, host (what `calicoctl node --libnetwork` creates)")


def test_plugin_socket(lab, calico_host):
    """Docker finds the calico network and IPAM driver through this socket: it must answer
    the plugin handshake as both drivers."""
    node = calico_host
    res = lab.host(node).run(["curl", "-sS", "--max-time", "5", "--unix-socket", PLUGIN_SOCKET,
                              "-X", "POST", "http://plugin/Plugin.Activate"], timeout=15)
    assert res.ok and '"NetworkDriver"' in res.stdout and '"IpamDriver"' in res.stdout, (
        f"{node}: the calico plugin does not answer on {PLUGIN_SOCKET} "
        f"({(res.stderr or res.stdout).strip() or f'exit {res.rc}'}): calico-libnetwork is not "
        "serving, so `docker network create --driver calico` and `docker run --net` fail")


def test_calicoctl_status(lab, calico_host):
    """`calicoctl status` answers and finds calico-node running (needs etcd and BIRD)."""
    node = calico_host
    res = lab.host(node).run(["calicoctl", "status"], timeout=30)
    assert res.ok and "calico-node container is running" in res.stdout, (
        f"{node}: `calicoctl status` exited {res.rc}: {(res.stdout + res.stderr).strip()[:400]}")
