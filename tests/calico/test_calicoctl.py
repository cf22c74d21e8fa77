"""calicoctl 0.22's grammar, outputs, messages and exit codes (spec §3), on a real etcd.

The commands that need no Docker (pool, profile, bgp, node show / bgp peer) run in-process
against the loopback etcd of tests/etcd_server.py (the `ctl` fixture of tests/calico/conftest.py);
`node`, `status` and the Docker network name mapping are exercised in the embedded lab
(tests/lab/test_tutorial.py). The commands of issue 18 are in test_calicoctl_commands.py.
"""
from __future__ import annotations

import ipaddress
import json

import pytest


def value(ctl, key: str):
    return json.loads(ctl.etcd.read(key).value)


# -- pool (§3.4) --------------------------------------------------------------------------------

def test_pool_add_show_and_options(ctl):
    assert ctl("pool add 192.168.21.0/24") == (0, "")
    assert ctl("pool add 192.168.21.0/24 --nat-outgoing --ipip") == (0, "")
    assert value(ctl, "/calico/v1/ipam/v4/pool/192.168.21.0-24") == {
        "cidr": "192.168.21.0/24", "ipip": "tunl0", "masquerade": True}
    assert ctl.etcd.read("/calico/v1/config/IpInIpEnabled").value == "true"
    rc, out = ctl("pool show --ipv4")
    assert rc == 0 and out == ("+-----------------+-------------------+\n"
                               "|    IPv4 CIDR    |      Options      |\n"
                               "+-----------------+-------------------+\n"
                               "| 192.168.21.0/24 | ipip,nat-outgoing |\n"
                               "+-----------------+-------------------+\n")
    # re-adding without flags clears the options (how calicoctl toggles them)
    ctl("pool add 192.168.21.0/24")
    assert value(ctl, "/calico/v1/ipam/v4/pool/192.168.21.0-24") == {"cidr": "192.168.21.0/24"}


@pytest.mark.parametrize("line, message", [
    ("pool add 192.168.21.0/27", "An IPv4 pool must have a prefix length of 26 or lower."),
    ("pool add 192.168.0.0/16", "Cannot add IP pool 192.168.0.0/16 - pool overlaps with an existing pool 192.168.21.0/24"),
    ("pool add fd80::/64 --ipip", "IP in IP not supported for IPv6 pools"),
    ("pool remove 10.9.0.0/16", "10.9.0.0/16 is not a configured pool."),
], ids=["prefix", "overlap", "ipip-v6", "remove-unknown"])
def test_pool_errors(ctl, line, message):
    ctl("pool add 192.168.21.0/24")
    rc, out = ctl(line)
    assert rc == 1 and out.startswith(message), out


# -- profile (§3.5) -----------------------------------------------------------------------------

def test_profile_add_show_remove(ctl):
    assert ctl("profile add web") == (0, "Created profile web\n")
    assert ctl("profile add web") == (0, "Profile web already exists.\n")
    assert value(ctl, "/calico/v1/policy/profile/web/rules") == {
        "inbound_rules": [{"action": "allow", "src_tag": "web"}], "outbound_rules": [{"action": "allow"}]}
    assert value(ctl, "/calico/v1/policy/profile/web/tags") == ["web"]
    assert ctl("profile show")[1] == "+------+\n| Name |\n+------+\n| web  |\n+------+\n"
    assert ctl("profile remove web") == (0, "Deleted profile web\n")
    assert ctl("profile remove web") == (0, "Profile web not found.\n")
    assert ctl("profile add bad/name")[0] == 1


def test_rule_add_show_json_remove(ctl):
    ctl("profile add web")
    assert ctl("profile web rule add inbound allow tcp to ports 80,443") == (0, "")
    assert ctl("profile web rule add inbound allow tcp to ports 80,443") == (0, "Rule already present, skipping.\n")
    assert ctl("profile web rule add inbound --at=1 deny icmp type 8 from cidr 10.0.0.0/8") == (0, "")
    assert ctl("profile web rule show")[1] == (
        "Inbound rules:\n   1 deny icmp type 8 from cidr 10.0.0.0/8\n   2 allow from tag web\n"
        "   3 allow tcp to ports 80,443\nOutbound rules:\n   1 allow\n")
    stored = value(ctl, "/calico/v1/policy/profile/web/rules")["inbound_rules"]
    assert stored[2] == {"action": "allow", "protocol": "tcp", "dst_ports": [80, 443]}
    assert json.loads(ctl("profile web rule json")[1]) == value(ctl, "/calico/v1/policy/profile/web/rules")
    assert ctl("profile web rule remove inbound --at=1") == (0, "")
    assert ctl("profile web rule remove inbound allow udp to ports 53") == (1, "Rule not found.\n")
    assert ctl("profile web rule remove inbound --at=9") == (1, "Rule position out-of-range.\n")
    assert ctl("profile web rule add inbound --at=9 allow udp")[1] == "Position 9 is out-of-range.\n"


def test_rule_port_range_crashes_like_libcalico(ctl):
    ctl("profile add web")
    rc, out = ctl("profile web rule add inbound allow tcp to ports 1000:2000")
    assert rc == 1 and "invalid literal for int()" in out
    assert len(value(ctl, "/calico/v1/policy/profile/web/rules")["inbound_rules"]) == 1


def test_rule_update_from_json(ctl):
    ctl("profile add db")
    doc = {"inbound_rules": [{"action": "allow", "src_tag": "app", "protocol": "tcp", "dst_ports": [3306]}],
           "outbound_rules": [{"action": "allow"}]}
    assert ctl("profile db rule update", json.dumps(doc)) == (0, "Successfully updated rules on profile db\n")
    assert value(ctl, "/calico/v1/policy/profile/db/rules") == doc
    rc, out = ctl("profile db rule update", '{"inbound_rules": [{"action": "allow", "bogus": 1}]}')
    assert rc == 1 and "bogus" in out


def test_tags(ctl):
    ctl("profile add app")
    assert ctl("profile app tag add db-users") == (0, "Tag db-users added to profile app\n")
    assert ctl("profile app tag show")[1].split() == ["app", "db-users"]
    assert ctl("profile app tag remove db-users") == (0, "Tag db-users removed from profile app\n")
    assert ctl("profile app tag remove db-users") == (1, "Tag db-users is not on profile app\n")
    assert ctl("profile nosuch tag show") == (1, "Profile nosuch not found.\n")


def test_grammar_mismatch_prints_usage(ctl):
    rc, out = ctl("profile app add inbound allow from tag web")   # the tutorial's slip
    assert rc == 1 and "calicoctl profile <PROFILE> rule add (inbound|outbound)" in out


# -- bgp (§3.6) and node bgp peer (§3.2) --------------------------------------------------------

def test_bgp_global_settings(ctl):
    assert ctl("bgp default-node-as") == (0, "64511\n")
    assert ctl("bgp default-node-as 64512") == (0, "")
    assert ctl.etcd.read("/calico/bgp/v1/global/as_num").value == "64512"
    assert ctl("bgp default-node-as 1.10") == (0, "")
    assert ctl("bgp default-node-as") == (0, "65546\n")            # dotted -> asplain
    for bad in ("abcde", "99999999999999999999999"):
        assert ctl(f"bgp default-node-as {bad}") == (1, "Invalid AS Number specified.\n")
    assert ctl("bgp node-mesh") == (0, "on\n")
    assert ctl("bgp node-mesh off") == (0, "")
    assert value(ctl, "/calico/bgp/v1/global/node_mesh") == {"enabled": False}
    assert ctl("bgp node-mesh") == (0, "off\n")


def test_bgp_peers(ctl):
    assert ctl("bgp peer show --ipv4") == (0, "No global IPv4 BGP Peers defined.\n\n")
    assert ctl("bgp peer add 192.168.20.4 as 64511") == (0, "")
    assert value(ctl, "/calico/bgp/v1/global/peer_v4/192.168.20.4") == {"ip": "192.168.20.4", "as_num": "64511"}
    assert "| 192.168.20.4         | 64511  |" in ctl("bgp peer show --ipv4")[1]
    assert ctl("bgp peer remove 192.168.20.4") == (0, "BGP peer removed from global configuration\n")
    assert ctl("bgp peer remove 192.168.20.4") == (1, "192.168.20.4 is not a globally configured peer.\n")
    assert ctl("node bgp peer add 192.168.20.9 as 64600") == (0, "")
    assert value(ctl, "/calico/bgp/v1/host/node1/peer_v4/192.168.20.9") == {"ip": "192.168.20.9", "as_num": "64600"}
    assert ctl("node bgp peer remove 192.168.20.8") == (1, "192.168.20.8 is not a configured peer for this node.\n")
    assert ctl("node bgp peer show --ipv4")[1].splitlines()[1].startswith("| Node specific IPv4 BGP Peer |")


def test_node_show(ctl):
    from lab.calico.datastore import Datastore
    ds = Datastore(ctl.etcd)
    ds.ensure_global_config("node1")
    ds.create_host("node1", "192.168.20.1")
    ds.create_host("node2", "192.168.20.2", as_num="64600")
    out = ctl("node show")[1]
    assert "|  node1   | 192.168.20.1 |           | 64511 (inherited) |" in out, out
    assert "|  node2   | 192.168.20.2 |           |       64600       |" in out, out


def test_node_remove_drops_the_hosts_trees_and_ipam_affinities(ctl):
    from lab.calico import model
    from lab.calico.datastore import Datastore
    from lab.calico.ipam import Ipam
    ds = Datastore(ctl.etcd)
    for host, ip in (("calico-01", "172.17.8.101"), ("calico-02", "172.17.8.102")):
        ds.ensure_global_config(host)
        ds.create_host(host, ip)
    ds.add_pool(model.Pool("10.9.0.0/24"))
    ds.add_node_peer("calico-01", "10.0.0.9", "64512")
    ipam = Ipam(ds)
    kept_ip = ipam.auto_assign("calico-01")[0]         # its block keeps this address
    ipam.auto_assign("calico-02")
    more = ipam.auto_assign("calico-01", 64)            # the rest of it + one in a 2nd block
    ipam.release_ips(more)                              # the 2nd block is empty, still affine
    assert len(ipam.affine_blocks("calico-01")) == 2
    # another host than this one (node1): no Docker is asked whether it still runs
    assert ctl("node remove --hostname=calico-01") == (0, "Node configuration removed\n")
    left = [n.key for n in ctl.etcd.read("/calico", recursive=True).get_subtree()]
    assert not [k for k in left if "/calico-01" in k]
    assert ds.hosts() == ["calico-02"]
    snap = ds.snapshot()
    kept = [b for b in snap.blocks
            if ipaddress.ip_address(kept_ip) in ipaddress.ip_network(b.cidr)]
    assert kept[0].affinity is None and kept[0].allocations.count(None) == 63
    assert len(snap.blocks) == 2                        # the empty one is gone
    assert snap.host_blocks("calico-02") and not snap.host_blocks("calico-01")


def test_ipam_release_and_info(ctl):
    from lab.calico.datastore import Datastore
    from lab.calico.ipam import Ipam
    ctl("pool add 192.168.30.0/24")
    Ipam(Datastore(ctl.etcd)).assign_ip("192.168.30.7", "node1", attributes={})
    assert ctl("ipam info 192.168.30.7")[1].startswith("IP 192.168.30.7 is assigned")
    assert ctl("ipam release 192.168.30.7") == (0, "Address successfully released\n")
    assert ctl("ipam release 192.168.30.7") == (1, "Address was not allocated.\n")
    assert ctl("ipam info 192.168.30.7") == (1, "192.168.30.7 is not currently assigned\n")
