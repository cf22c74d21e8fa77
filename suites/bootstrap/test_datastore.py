"""What calico-node writes into etcd when it starts on each host (spec §1.2, §1.3)."""
import ipaddress

import etcd
import pytest


def _read(lab, key):
    try:
        return lab.etcd().read(key).value
    except etcd.EtcdKeyNotFound:
        return None
    except etcd.EtcdException as exc:
        pytest.fail(f"etcd at {lab.etcd_url} unreadable: {exc}", pytrace=False)


def test_datastore_ready(lab):
    value = _read(lab, "/calico/v1/Ready")
    assert value == "true", (f"/calico/v1/Ready is {value!r}, expected 'true': no calico-node has "
                             "initialised the datastore, so Felix on every host waits")


def test_host_registered_with_its_address(lab, calico_host):
    """bird_ip = ip_addr_v4 = the host's own address: what BGP peers and Felix use."""
    node = calico_host
    ip = lab.topology.node(node).ip
    seen = (_read(lab, f"/calico/v1/host/{node}/bird_ip"),
            _read(lab, f"/calico/bgp/v1/host/{node}/ip_addr_v4"))
    assert seen == (ip, ip), (
        f"{node}: bird_ip={seen[0]!r}, ip_addr_v4={seen[1]!r}; expected both {ip!r} "
        f"(`calicoctl node --ip={ip}` writes them)")


def test_at_least_one_pool(lab):
    pools = [p.cidr for p in lab.facts.pools if p.version == 4]
    assert pools, ("no IPv4 pool in /calico/v1/ipam/v4/pool: workloads cannot get addresses "
                   "(`calicoctl pool add <cidr>`)")
    for cidr in pools:
        assert ipaddress.ip_network(cidr).prefixlen <= 26, f"pool {cidr} is smaller than one /26 block"


def test_calico_network_global_on_every_node(observe, node, network):
    """Created once, seen by every Docker through the cluster store, with the same ID."""
    network_id, name = network
    seen = observe(node)
    known = next((n for n in seen.docker_networks or () if n.id == network_id), None)
    if known is None:
        why = f"dockerd does not answer ({seen.docker_error})" if seen.docker_error else "not listed"
        pytest.fail(f"{node}: Docker does not know calico network {name} ({network_id[:12]}): "
                    f"{why}; is its cluster store the shared etcd?", pytrace=False)
    found = (known.name, known.driver, known.scope, known.ipam_driver)
    assert found == (name, "calico", "global", "calico"), (
        f"{node}: network {network_id[:12]} is {found}; expected ({name!r}, 'calico', 'global', 'calico')")
