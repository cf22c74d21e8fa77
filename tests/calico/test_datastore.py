"""The reference node's datastore writer/reader against a real etcd (spec §1)."""
from __future__ import annotations

import json
import re
import threading
import time

import etcd
import pytest

from lab.calico import keys, model
from lab.calico.datastore import Datastore, DatastoreError, NotFound
from lab.calico.ipam import Ipam

N = "f" * 20 + "0123456789abcdef" * 2 + "a" * 12          # a 64-hex Docker network id
EP1 = "7f3c3a6b2e1d" + "0" * 52
EP2 = "9a8b7c6d5e4f" + "1" * 52


@pytest.fixture
def ds(etcd_client) -> Datastore:
    return Datastore(etcd_client)


def tree(client) -> tuple[dict[str, str], set[str]]:
    """Every value under /calico, and every directory."""
    leaves, dirs = {}, set()
    try:
        root = client.read("/calico", recursive=True)
    except etcd.EtcdKeyNotFound:
        return leaves, dirs
    for node in root.get_subtree():
        if node.dir:
            dirs.add(node.key)
        else:
            leaves[node.key] = node.value
    return leaves, dirs


def libnetwork_endpoint(host: str, ep_id: str, ip: str, profile: str = N) -> model.Endpoint:
    return model.Endpoint(hostname=host, orchestrator_id="libnetwork", workload_id="libnetwork",
                          endpoint_id=ep_id, name="cali" + ep_id[:11], mac="EE:EE:EE:EE:EE:EE",
                          profile_ids=(profile,), ipv4_nets=(f"{ip}/32",))


def start_node(ds: Datastore, host: str, ip: str, **kw) -> None:
    ds.ensure_global_config(host)
    ds.create_host(host, ip, **kw)


# -- node start: spec §1.2, §1.3 and the worked example of §1.10 --------------------------------

def test_two_host_libnetwork_scenario_writes_the_keys_of_the_worked_example(ds, etcd_client):
    start_node(ds, "calico-01", "172.17.8.101")
    start_node(ds, "calico-02", "172.17.8.102")
    ds.add_pool(model.Pool("192.168.0.0/16"))
    ds.create_profile(N)
    request = {"NetworkID": N, "IPv4Data": [{"AddressSpace": "", "Gateway": "0.0.0.0/0",
                                            "Pool": "0.0.0.0/0"}], "IPv6Data": [], "Options": {}}
    ds.set_network(N, request)
    ipam = Ipam(ds)
    ip1 = ipam.auto_assign("calico-01")[0]
    ip2 = ipam.auto_assign("calico-02")[0]
    ds.set_endpoint(libnetwork_endpoint("calico-01", EP1, ip1))
    ds.set_endpoint(libnetwork_endpoint("calico-02", EP2, ip2))

    leaves, dirs = tree(etcd_client)
    guid = leaves.pop("/calico/v1/config/ClusterGUID")
    assert re.fullmatch(r"[0-9a-f]{32}", guid)
    b1, b2 = (f"{ip.rsplit('.', 1)[0]}.{int(ip.rsplit('.', 1)[1]) & ~63}-26" for ip in (ip1, ip2))
    block1 = json.loads(leaves.pop(f"/calico/ipam/v2/assignment/ipv4/block/{b1}"))
    block2 = json.loads(leaves.pop(f"/calico/ipam/v2/assignment/ipv4/block/{b2}"))
    wl = "workload/libnetwork/libnetwork/endpoint"
    ep1 = json.loads(leaves.pop(f"/calico/v1/host/calico-01/{wl}/{EP1}"))
    ep2 = json.loads(leaves.pop(f"/calico/v1/host/calico-02/{wl}/{EP2}"))
    assert leaves == {
        "/calico/v1/Ready": "true",
        "/calico/v1/config/InterfacePrefix": "cali",
        "/calico/v1/config/LogSeverityFile": "none",
        "/calico/v1/config/LogSeverityScreen": "info",
        "/calico/v1/config/LogFilePath": "none",
        "/calico/v1/config/IpInIpEnabled": "false",
        "/calico/v1/config/ReportingIntervalSecs": "0",
        "/calico/v1/host/calico-01/bird_ip": "172.17.8.101",
        "/calico/v1/host/calico-01/config/DefaultEndpointToHostAction": "RETURN",
        "/calico/v1/host/calico-01/config/marker": "created",
        "/calico/v1/host/calico-02/bird_ip": "172.17.8.102",
        "/calico/v1/host/calico-02/config/DefaultEndpointToHostAction": "RETURN",
        "/calico/v1/host/calico-02/config/marker": "created",
        f"/calico/v1/policy/profile/{N}/tags": f'["{N}"]',
        f"/calico/v1/policy/profile/{N}/labels": "{}",
        f"/calico/v1/policy/profile/{N}/rules": json.dumps(
            {"inbound_rules": [{"action": "allow", "src_tag": N}],
             "outbound_rules": [{"action": "allow"}]}),
        "/calico/v1/ipam/v4/pool/192.168.0.0-16": '{"cidr": "192.168.0.0/16"}',
        f"/calico/ipam/v2/host/calico-01/ipv4/block/{b1}": "",
        f"/calico/ipam/v2/host/calico-02/ipv4/block/{b2}": "",
        "/calico/bgp/v1/global/as_num": "64511",
        "/calico/bgp/v1/global/node_mesh": '{"enabled": true}',
        "/calico/bgp/v1/host/calico-01/ip_addr_v4": "172.17.8.101",
        "/calico/bgp/v1/host/calico-01/ip_addr_v6": "",
        "/calico/bgp/v1/host/calico-02/ip_addr_v4": "172.17.8.102",
        "/calico/bgp/v1/host/calico-02/ip_addr_v6": "",
        f"/calico/libnetwork/v1/{N}": json.dumps(request),
    }
    assert {"/calico/v1/host/calico-01/workload", "/calico/v1/ipam/v4/pool",
            "/calico/v1/ipam/v6/pool", "/calico/ipam/v2/host/calico-01/ipv4/block",
            "/calico/ipam/v2/host/calico-01/ipv6/block",
            "/calico/ipam/v2/host/calico-02/ipv6/block"} <= dirs
    assert ep1 == {"state": "active", "name": "cali" + EP1[:11], "mac": "EE:EE:EE:EE:EE:EE",
                   "profile_ids": [N], "labels": {}, "ipv4_nets": [f"{ip1}/32"], "ipv6_nets": []}
    assert list(ep2) == ["state", "name", "mac", "profile_ids", "labels", "ipv4_nets", "ipv6_nets"]
    # The first address of a fresh block is its network address (spec §1.7).
    assert ip1 == b1.split("-")[0] and ip2 == b2.split("-")[0]
    assert block1["affinity"] == "host:calico-01" and block2["affinity"] == "host:calico-02"
    assert list(block1) == ["cidr", "affinity", "strict_affinity", "allocations", "unallocated",
                            "attributes"]


def test_global_config_is_only_written_when_absent_but_ready_always(ds, etcd_client):
    etcd_client.write("/calico/bgp/v1/global/as_num", "64512")
    etcd_client.write("/calico/bgp/v1/global/node_mesh", '{"enabled": false}')
    etcd_client.write("/calico/v1/config/LogSeverityScreen", "debug")
    etcd_client.write("/calico/v1/config/IpInIpEnabled", "true")
    etcd_client.write("/calico/v1/config/ClusterGUID", "existing")
    etcd_client.write("/calico/v1/Ready", "false")
    ds.ensure_global_config("h1")
    ds.ensure_global_config("h1")                       # idempotent, dirs already there
    leaves, _ = tree(etcd_client)
    assert leaves["/calico/bgp/v1/global/as_num"] == "64512"
    assert leaves["/calico/bgp/v1/global/node_mesh"] == '{"enabled": false}'
    assert leaves["/calico/v1/config/LogSeverityScreen"] == "debug"
    assert leaves["/calico/v1/config/IpInIpEnabled"] == "true"
    assert leaves["/calico/v1/config/ClusterGUID"] == "existing"
    assert leaves["/calico/v1/config/InterfacePrefix"] == "cali"
    assert leaves["/calico/v1/Ready"] == "true"


def test_create_host_as_number_ipv6_and_rerun(ds, etcd_client):
    ds.create_host("h1", "10.0.0.1", ip6="fd00::1", as_num="64600")
    assert ds.host_bgp("h1") == ("10.0.0.1", "fd00::1", "64600")
    etcd_client.write(keys.host_config("h1", "DefaultEndpointToHostAction"), "ACCEPT")
    ds.create_host("h1", "10.0.0.2")                   # restarted without --as/--ip6
    assert ds.host_bgp("h1") == ("10.0.0.2", "", None)
    leaves, _ = tree(etcd_client)
    assert "/calico/bgp/v1/host/h1/as_num" not in leaves
    assert leaves["/calico/v1/host/h1/bird_ip"] == "10.0.0.2"
    assert leaves["/calico/bgp/v1/host/h1/ip_addr_v6"] == ""
    assert leaves[keys.host_config("h1", "DefaultEndpointToHostAction")] == "ACCEPT"
    assert leaves[keys.host_config("h1", "marker")] == "created"
    assert ds.host_bgp("nope") == (None, None, None)


def test_hosts_and_who_uses_an_ip(ds):
    start_node(ds, "calico-01", "172.17.8.101")
    start_node(ds, "calico-02", "172.17.8.102", ip6="fd00::2")
    assert ds.hosts() == ["calico-01", "calico-02"]
    assert ds.hostname_for_ip("172.17.8.102") == "calico-02"
    assert ds.hostname_for_ip("fd00::2") == "calico-02"
    assert ds.hostname_for_ip("172.17.8.102", exclude="calico-02") is None
    assert ds.hostname_for_ip("172.17.8.103") is None
    assert ds.hostname_for_ip("") is None


def test_remove_host_drops_its_bgp_and_v1_trees(ds, etcd_client):
    # its IPAM data is calicoctl's to remove first (test_calicoctl: node remove)
    start_node(ds, "calico-01", "172.17.8.101")
    start_node(ds, "calico-02", "172.17.8.102")
    ds.add_node_peer("calico-01", "10.0.0.9", "64512")
    ds.remove_host("calico-01")
    leaves, dirs = tree(etcd_client)
    assert not any("/calico-01" in k for k in leaves)
    assert all(d.startswith(f"{keys.IPAM_HOSTS}/calico-01") for d in dirs if "/calico-01" in d)
    assert ds.hosts() == ["calico-02"]


# -- Felix config ----------------------------------------------------------------------------------

def test_felix_config_global_and_per_host(ds, etcd_client):
    ds.set_config("LogSeverityScreen", "debug")
    ds.set_config("IpInIpTunnelAddr", "192.168.0.1", hostname="h1")
    assert ds.get_config("LogSeverityScreen") == "debug"
    assert ds.get_config("IpInIpTunnelAddr", hostname="h1") == "192.168.0.1"
    assert etcd_client.read("/calico/v1/host/h1/config/IpInIpTunnelAddr").value == "192.168.0.1"
    ds.set_config("IpInIpTunnelAddr", None, hostname="h1")
    assert ds.get_config("IpInIpTunnelAddr", hostname="h1") is None
    assert ds.get_config("Nope") is None


# -- pools (spec §1.6) ---------------------------------------------------------------------------

@pytest.mark.parametrize("pool, key, value", [
    (model.Pool("192.168.0.0/16"), "192.168.0.0-16", '{"cidr": "192.168.0.0/16"}'),
    (model.Pool("10.0.1.0/24", ipip=True, masquerade=True), "10.0.1.0-24",
     '{"cidr": "10.0.1.0/24", "ipip": "tunl0", "masquerade": true}'),
    (model.Pool("192.168.1.0/24", ipam=False), "192.168.1.0-24",
     '{"cidr": "192.168.1.0/24", "ipam": false}'),
    (model.Pool("10.0.2.7/24", masquerade=True, disabled=True), "10.0.2.0-24",
     '{"cidr": "10.0.2.0/24", "masquerade": true, "disabled": true}'),
])
def test_pool_json(ds, etcd_client, pool, key, value):
    ds.add_pool(pool)
    assert etcd_client.read(f"/calico/v1/ipam/v4/pool/{key}").value == value
    back = ds.get_pool(pool.cidr)
    assert back == model.Pool(key.replace("-", "/"), pool.ipip, pool.masquerade, pool.ipam,
                              pool.disabled)
    assert ds.pools() == [back]


def test_ipip_pool_turns_ipip_on_for_good(ds):
    ds.ensure_global_config("h1")
    ds.add_pool(model.Pool("10.0.1.0/24"))
    assert ds.get_config("IpInIpEnabled") == "false"
    ds.add_pool(model.Pool("10.0.1.0/24", ipip=True))
    assert ds.get_config("IpInIpEnabled") == "true"
    ds.add_pool(model.Pool("10.0.1.0/24"))             # re-add without --ipip
    assert ds.get_config("IpInIpEnabled") == "true"
    assert ds.get_pool("10.0.1.0/24").ipip is False


def test_pools_sorted_by_family_and_removal(ds, etcd_client):
    ds.add_pool(model.Pool("192.168.0.0/16"))
    ds.add_pool(model.Pool("10.0.0.0/24"))
    ds.add_pool(model.Pool("fd80:24e2:f998:72d6::/64"))
    assert [p.cidr for p in ds.pools()] == ["10.0.0.0/24", "192.168.0.0/16"]
    assert [p.cidr for p in ds.pools(6)] == ["fd80:24e2:f998:72d6::/64"]
    assert etcd_client.read("/calico/v1/ipam/v6/pool/fd80:24e2:f998:72d6::-64").value == \
        '{"cidr": "fd80:24e2:f998:72d6::/64"}'
    ds.remove_pool("10.0.0.0/24")
    assert ds.get_pool("10.0.0.0/24") is None
    with pytest.raises(NotFound) as err:
        ds.remove_pool("10.0.0.0/24")
    assert str(err.value) == "10.0.0.0/24 is not a configured pool."


# -- profiles (spec §1.5) ------------------------------------------------------------------------

def test_profile_default_and_edits(ds, etcd_client):
    ds.create_profile("WEB")
    base = "/calico/v1/policy/profile/WEB"
    assert etcd_client.read(f"{base}/tags").value == '["WEB"]'
    assert etcd_client.read(f"{base}/labels").value == "{}"
    assert json.loads(etcd_client.read(f"{base}/rules").value) == {
        "inbound_rules": [{"action": "allow", "src_tag": "WEB"}],
        "outbound_rules": [{"action": "allow"}]}
    assert ds.profile_exists("WEB") and not ds.profile_exists("DB")
    prof = ds.get_profile("WEB")
    assert prof == model.Profile("WEB", ("WEB",), ({"action": "allow", "src_tag": "WEB"},),
                                 ({"action": "allow"},))
    ds.set_profile_tags("WEB", ["WEB", "FRONT"])
    rules = {"inbound_rules": [{"action": "allow", "protocol": "tcp", "dst_ports": [80]},
                               {"action": "deny"}],
             "outbound_rules": [{"action": "allow", "dst_net": "10.0.0.0/8"}]}
    ds.set_profile_rules("WEB", rules)
    assert json.loads(etcd_client.read(f"{base}/rules").value) == rules
    assert json.loads(etcd_client.read(f"{base}/tags").value) == ["WEB", "FRONT"]
    prof = ds.get_profile("WEB")
    assert prof.tags == ("WEB", "FRONT") and list(prof.inbound) == rules["inbound_rules"]
    ds.create_profile("DB")
    assert ds.profile_names() == ["DB", "WEB"]
    ds.create_profile("WEB")                           # overwrites, as libcalico did
    assert ds.get_profile("WEB").tags == ("WEB",)
    ds.remove_profile("WEB")
    assert ds.profile_names() == ["DB"]
    with pytest.raises(NotFound, match="WEB is not a configured profile."):
        ds.remove_profile("WEB")
    with pytest.raises(NotFound):
        ds.get_profile("WEB")
    etcd_client.write("/calico/v1/policy/profile/DB/rules", "{broken")
    assert ds.get_profile("DB") == model.Profile("DB", ("DB",), (), ())   # Felix: no rules


# -- endpoints (spec §1.4) -----------------------------------------------------------------------

def test_endpoint_json_and_lookups(ds, etcd_client):
    ep = libnetwork_endpoint("h1", EP1, "192.168.91.0")
    ds.set_endpoint(ep)
    key = f"/calico/v1/host/h1/workload/libnetwork/libnetwork/endpoint/{EP1}"
    raw = etcd_client.read(key).value
    assert json.loads(raw) == {"state": "active", "name": "cali7f3c3a6b2e1",
                               "mac": "EE:EE:EE:EE:EE:EE", "profile_ids": [N], "labels": {},
                               "ipv4_nets": ["192.168.91.0/32"], "ipv6_nets": []}
    other = model.Endpoint("h2", "docker", "c" * 64, "d" * 32, "cali" + "d" * 11,
                           "aa:bb:cc:dd:ee:ff", ("A", "B"), ("10.0.0.2/32",), ("fd00::2/128",),
                           state="inactive", labels=(("role", "db"),))
    ds.set_endpoint(other)
    assert ds.endpoints() == [ep, other]
    assert ds.endpoints("h2") == [other]
    assert ds.find_endpoint(EP1) == ep and ds.find_endpoint("nope") is None
    assert ds.profile_members(N) == [ep] and ds.profile_members("B") == [other]
    ds.remove_endpoint("h1", EP1)
    assert ds.endpoints() == [other]
    with pytest.raises(NotFound):
        ds.remove_endpoint("h1", EP1)
    ds.remove_endpoint("h2", "d" * 32, orchestrator="docker", workload="c" * 64)
    assert ds.endpoints() == []


def test_legacy_endpoint_fields_are_read(ds, etcd_client):
    etcd_client.write(keys.endpoint("h1", "e1"), json.dumps({
        "state": "active", "name": "calie1", "mac": "EE:EE:EE:EE:EE:EE", "profile_id": "P",
        "ipv4_nets": ["10.0.0.1/32"], "ipv6_nets": [], "ipv4_gateway": None}))
    (ep,) = ds.endpoints()
    assert ep.profile_ids == ("P",) and ep.ipv4_addrs == ("10.0.0.1",)


# -- BGP (spec §1.8) -----------------------------------------------------------------------------

def test_bgp_global_settings(ds, etcd_client):
    assert ds.get_default_as() == "64511"
    assert ds.get_node_mesh() is True
    ds.set_default_as("65000")
    ds.set_node_mesh(False)
    assert etcd_client.read("/calico/bgp/v1/global/as_num").value == "65000"
    assert etcd_client.read("/calico/bgp/v1/global/node_mesh").value == '{"enabled": false}'
    assert ds.get_default_as() == "65000" and ds.get_node_mesh() is False
    ds.set_node_mesh(True)
    assert etcd_client.read("/calico/bgp/v1/global/node_mesh").value == '{"enabled": true}'
    ds.set_bgp_loglevel("debug")
    ds.set_bgp_loglevel("none", hostname="h1")
    assert etcd_client.read("/calico/bgp/v1/global/loglevel").value == "debug"
    assert ds.get_bgp_loglevel("h1") == "none"


def test_bgp_peers_global_and_per_node(ds, etcd_client):
    ds.add_global_peer("10.0.0.9", 64512)             # an int AS is stored as a string
    ds.add_global_peer("10.0.0.10", "64513")
    ds.add_global_peer("fd00::9", "64514")
    assert json.loads(etcd_client.read("/calico/bgp/v1/global/peer_v4/10.0.0.9").value) == \
        {"ip": "10.0.0.9", "as_num": "64512"}
    assert etcd_client.read("/calico/bgp/v1/global/peer_v6/fd00::9").value == \
        '{"ip": "fd00::9", "as_num": "64514"}'
    assert ds.global_peers() == [model.Peer("10.0.0.9", "64512"), model.Peer("10.0.0.10", "64513")]
    assert ds.global_peers(6) == [model.Peer("fd00::9", "64514")]
    ds.remove_global_peer("10.0.0.9")
    with pytest.raises(NotFound, match="10.0.0.9 is not a configured peer."):
        ds.remove_global_peer("10.0.0.9")
    ds.add_node_peer("h1", "172.17.8.200", "65001")
    assert json.loads(etcd_client.read("/calico/bgp/v1/host/h1/peer_v4/172.17.8.200").value) == \
        {"ip": "172.17.8.200", "as_num": "65001"}
    assert ds.node_peers("h1") == [model.Peer("172.17.8.200", "65001")]
    assert ds.node_peers("h2") == []
    ds.remove_node_peer("h1", "172.17.8.200")
    with pytest.raises(NotFound):
        ds.remove_node_peer("h1", "172.17.8.200")


def test_route_reflectors(ds, etcd_client):
    etcd_client.write("/calico/bgp/v1/rr_v4/192.168.20.4",
                      '{"ip": "192.168.20.4", "cluster_id": "1.0.0.1"}')
    ds.add_route_reflector("192.168.20.5")
    assert ds.route_reflectors() == [model.RouteReflector("192.168.20.4", "1.0.0.1"),
                                     model.RouteReflector("192.168.20.5", None)]
    ds.remove_route_reflector("192.168.20.5")
    assert [r.ip for r in ds.route_reflectors()] == ["192.168.20.4"]


# -- libnetwork ----------------------------------------------------------------------------------

def test_libnetwork_networks(ds):
    req = {"NetworkID": N, "Options": {"com.docker.network.generic": {}}}
    ds.set_network(N, req)
    assert ds.get_network(N) == req
    assert ds.remove_network(N) is True
    assert ds.get_network(N) is None and ds.remove_network(N) is False


# -- snapshot --------------------------------------------------------------------------------------

def populate(ds: Datastore) -> tuple[str, str]:
    start_node(ds, "calico-01", "172.17.8.101")
    start_node(ds, "calico-02", "172.17.8.102", as_num="64600")
    ds.add_pool(model.Pool("192.168.0.0/16", masquerade=True))
    ds.add_pool(model.Pool("10.10.0.0/24", ipam=False))
    ds.create_profile(N)
    ds.set_profile_tags(N, [N, "extra"])
    ds.set_network(N, {"NetworkID": N})
    ipam = Ipam(ds)
    ip1 = ipam.auto_assign("calico-01")[0]
    ip2 = ipam.auto_assign("calico-02")[0]
    ds.set_endpoint(libnetwork_endpoint("calico-01", EP1, ip1))
    ds.set_endpoint(libnetwork_endpoint("calico-02", EP2, ip2))
    ds.add_global_peer("10.0.0.9", "64512")
    ds.add_node_peer("calico-02", "10.0.0.8", "64513")
    ds.set_config("IpInIpTunnelAddr", "192.168.0.1", hostname="calico-02")
    ds.set_bgp_loglevel("debug")
    ds.add_route_reflector("192.168.20.4", "1.0.0.1")
    return ip1, ip2


def test_snapshot_round_trip(ds, etcd_client):
    ip1, ip2 = populate(ds)
    snap = ds.snapshot()
    assert snap.etcd_index == etcd_client.read("/calico").etcd_index
    assert snap.ready is True
    assert snap.config_value("InterfacePrefix") == "cali"
    assert snap.config_value("IpInIpTunnelAddr", hostname="calico-02") == "192.168.0.1"
    assert snap.config_value("IpInIpTunnelAddr", hostname="calico-01") is None
    assert snap.hosts == (
        model.Host("calico-01", "172.17.8.101", "172.17.8.101", None, None, (),
                   (("DefaultEndpointToHostAction", "RETURN"), ("marker", "created"))),
        model.Host("calico-02", "172.17.8.102", "172.17.8.102", None, "64600",
                   (model.Peer("10.0.0.8", "64513"),),
                   (("DefaultEndpointToHostAction", "RETURN"), ("IpInIpTunnelAddr", "192.168.0.1"),
                    ("marker", "created"))))
    assert snap.pools == (model.Pool("10.10.0.0/24", ipam=False),
                          model.Pool("192.168.0.0/16", masquerade=True))
    assert snap.profiles == (model.Profile(N, (N, "extra"),
                                           ({"action": "allow", "src_tag": N},),
                                           ({"action": "allow"},)),)
    assert snap.endpoints == (libnetwork_endpoint("calico-01", EP1, ip1),
                              libnetwork_endpoint("calico-02", EP2, ip2))
    assert snap.endpoints == tuple(ds.endpoints())
    assert {(b.affinity, b.allocations.count(None)) for b in snap.blocks} == \
        {("calico-01", 63), ("calico-02", 63)}
    assert all(b.attributes == ({"handle_id": None, "secondary": None},) for b in snap.blocks)
    assert [h for h, _ in snap.affinities] == ["calico-01", "calico-02"]
    assert snap.host_blocks("calico-01") == tuple(Ipam(ds).affine_blocks("calico-01"))
    assert snap.as_num == "64511" and snap.host_as("calico-02") == "64600"
    assert snap.host_as("calico-01") == "64511"
    assert snap.node_mesh is True
    assert snap.global_peers_v4 == (model.Peer("10.0.0.9", "64512"),)
    assert snap.route_reflectors == (model.RouteReflector("192.168.20.4", "1.0.0.1"),)
    assert snap.libnetwork_networks == ((N, json.dumps({"NetworkID": N})),)
    assert snap.loglevel == "debug"


def test_snapshot_of_an_empty_datastore(ds, etcd_client):
    snap = ds.snapshot()
    assert snap == model.Snapshot(etcd_index=snap.etcd_index)
    assert snap.etcd_index > 0
    etcd_client.write("/other", "x")
    assert ds.snapshot().etcd_index == snap.etcd_index + 1


def test_snapshot_skips_unreadable_items_one_by_one(ds, etcd_client):
    ip1, _ = populate(ds)
    bad = "{not json"
    etcd_client.write(keys.endpoint("calico-01", "bad1"), bad)
    etcd_client.write(keys.endpoint("calico-01", "bad2"), '{"state": "active", "name": 5}')
    etcd_client.write(keys.endpoint("calico-01", "bad3"), '["a list"]')
    etcd_client.write(keys.pool_v4("172.16.0.0/16"), bad)
    etcd_client.write(keys.block_v4("172.16.0.0/26"), '{"cidr": "172.16.0.0/26"}')
    etcd_client.write("/calico/v1/policy/profile/BAD/rules", '{"inbound_rules": "x"}')
    etcd_client.write("/calico/v1/policy/profile/NORULES/tags", '["NORULES"]')
    etcd_client.write("/calico/v1/policy/profile/BADTAGS/tags", bad)
    etcd_client.write("/calico/v1/policy/profile/BADTAGS/rules",
                      '{"inbound_rules": [], "outbound_rules": []}')
    etcd_client.write(keys.global_peer_v4("10.0.0.99"), bad)
    etcd_client.write("/calico/bgp/v1/global/node_mesh", bad)
    etcd_client.write(keys.rr_v4("192.168.20.9"), bad)
    snap = ds.snapshot()
    assert [e.endpoint_id for e in snap.endpoints] == [EP1, EP2]
    assert [p.cidr for p in snap.pools] == ["10.10.0.0/24", "192.168.0.0/16"]
    assert len(snap.blocks) == 2
    assert [p.name for p in snap.profiles] == ["BADTAGS", N]
    assert snap.profile("BADTAGS").tags == ()
    assert snap.global_peers_v4 == (model.Peer("10.0.0.9", "64512"),)
    assert snap.node_mesh is True
    assert [r.ip for r in snap.route_reflectors] == ["192.168.20.4"]
    assert [e.endpoint_id for e in ds.endpoints()] == [EP1, EP2]


# -- wait_for_change -----------------------------------------------------------------------------

def test_wait_for_change_returns_promptly_after_a_write(ds, etcd_client):
    start_node(ds, "h1", "10.0.0.1")
    index = ds.snapshot().etcd_index
    written = {}

    def writer():
        time.sleep(0.3)
        written["at"] = time.monotonic()
        Datastore(etcd.Client(host=etcd_client.host, port=etcd_client.port)).set_config(
            "LogSeverityScreen", "debug")

    t = threading.Thread(target=writer)
    t.start()
    new = ds.wait_for_change(index, timeout=5)
    returned = time.monotonic()
    t.join()
    assert new > index
    assert returned - written["at"] < 0.3
    assert ds.snapshot().config_value("LogSeverityScreen") == "debug"


def test_wait_for_change_times_out_with_the_same_index(ds):
    ds.ensure_global_config("h1")
    index = ds.snapshot().etcd_index
    start = time.monotonic()
    assert ds.wait_for_change(index, timeout=0.4) == index
    assert 0.35 < time.monotonic() - start < 2


def test_wait_for_change_sees_changes_made_before_it_was_called(ds, etcd_client):
    index = ds.snapshot().etcd_index
    ds.set_config("LogSeverityScreen", "debug")
    start = time.monotonic()
    assert ds.wait_for_change(index, timeout=5) == index + 1
    assert time.monotonic() - start < 0.5
    etcd_client.write("/elsewhere", "x")                  # outside /calico: not a change
    assert ds.wait_for_change(ds.snapshot().etcd_index, timeout=0.3) == ds.snapshot().etcd_index


def test_wait_for_change_before_calico_exists(ds):
    index = ds.snapshot().etcd_index
    assert ds.wait_for_change(index, timeout=0.2) == index
    ds.ensure_global_config("h1")
    assert ds.wait_for_change(index, timeout=5) == index + 1


def test_wait_for_change_when_history_was_cleared_asks_for_a_resnapshot(ds, etcd_client):
    index = ds.snapshot().etcd_index
    etcd_client.write("/calico/v1/config/Churn", "0")
    for i in range(1010):                              # etcd v2 keeps 1000 events
        etcd_client.write("/churn", str(i))
    start = time.monotonic()
    assert ds.wait_for_change(index, timeout=5) == index + 1
    assert time.monotonic() - start < 0.5


# -- configuration from the environment ----------------------------------------------------------

def test_from_env_reaches_the_etcd_named_by_etcd_authority(etcd_client):
    ds = Datastore.from_env({"ETCD_AUTHORITY": f"{etcd_client.host}:{etcd_client.port}"})
    ds.set_default_as("64999")
    assert etcd_client.read("/calico/bgp/v1/global/as_num").value == "64999"
    ds = Datastore.from_env({"ETCD_ENDPOINTS": f"http://{etcd_client.host}:{etcd_client.port}"})
    assert ds.get_default_as() == "64999" and ds.is_reachable()


@pytest.mark.parametrize("env, message", [
    ({"ETCD_ENDPOINTS": "http://127.0.0.1:2379,https://127.0.0.1:2380"},
     "Inconsistent protocols in ETCD_ENDPOINTS"),
    ({"ETCD_ENDPOINTS": "127.0.0.1:2379"}, "Invalid ETCD_ENDPOINTS"),
    ({"ETCD_AUTHORITY": "127.0.0.1"}, "Invalid ETCD_AUTHORITY. Address must take the form"),
    ({"ETCD_SCHEME": "ftp"}, "Invalid ETCD_SCHEME"),
    ({"ETCD_SCHEME": "https"}, "Invalid ETCD_CA_CERT_FILE. Certificate Authority cert is required"),
    ({"ETCD_SCHEME": "https", "ETCD_KEY_FILE": "/k.pem", "ETCD_CA_CERT_FILE": "/etc/hostname"},
     "Key and certificate must both be specified or both be blank"),
])
def test_from_env_rejects_bad_settings(env, message):
    with pytest.raises(DatastoreError, match=re.escape(message)):
        Datastore.from_env(env)


def test_unreachable_etcd_is_a_clear_datastore_error():
    import socket
    with socket.socket() as s:                         # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ds = Datastore.from_env({"ETCD_AUTHORITY": f"127.0.0.1:{port}"})
    assert ds.is_reachable() is False
    with pytest.raises(DatastoreError, match=r"^ensure_global_config: Error accessing etcd "
                                             r"\(.*\)\.  Is etcd running\?$"):
        ds.ensure_global_config("h1")
    with pytest.raises(DatastoreError, match="Is etcd running"):
        ds.wait_for_change(5, 0.2)
