"""Unit tests for lab.topology: loading, defaults, round trip, and every validation rule."""

import copy
import json
import re

import pytest

from lab.errors import TopologyError
from lab.topology import TOPOLOGY_DIR, Topology, list_topologies, load_topology, parse_topology

# A valid topology that uses every section, so each case below can break exactly one rule.
BASE = {
    "name": "full",
    "description": "every section",
    "fabric": {"subnet": "192.168.20.0/24"},
    "management": {"name": "mgmt", "ip": "192.168.20.254"},
    "etcd": {"node": "node1", "port": 2379},
    "nodes": [
        {"name": "node1", "ip": "192.168.20.1"},
        {"name": "node2", "ip": "192.168.20.2", "as_num": 64512, "roles": ["calico-node", "route-reflector"]},
    ],
    "bgp": {
        "mode": "route-reflector",
        "as_num": 64511,
        "route_reflectors": [{"node": "node2", "cluster_id": "1.0.0.1"}],
        "peers": [{"ip": "192.168.20.100", "as_num": 65000}, {"ip": "192.168.20.101", "as_num": 65001, "node": "node1"}],
    },
    "pools": [{"cidr": "10.0.0.0/16", "ipip": True}, {"cidr": "10.1.0.0/16", "nat_outgoing": True}],
    "networks": [{"name": "net1", "subnet": "10.0.0.0/16"}, {"name": "net2"}],
    "profiles": [{"name": "net1", "tags": ["net1", "web"], "rules": {"inbound": ["allow from tag web"], "outbound": ["allow"]}}],
    "workloads": [
        {"name": "w1", "node": "node1", "network": "net1", "ip": "10.0.0.5"},
        {"name": "w2", "node": "node2", "network": "net2", "command": "sleep 1000"},
    ],
}

DELETE = object()


def mutate(data, path, value):
    """Set (or DELETE) the value at a key path written like the error messages: nodes[1].ip."""
    keys = [int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", path)]
    *parents, last = keys
    for key in parents:
        data = data[key]
    if value is DELETE:
        del data[last]
    else:
        data[last] = value


def parse(changes):
    data = copy.deepcopy(BASE)
    for path, value in changes.items():
        mutate(data, path, value)
    return parse_topology(data, "t.yaml")


def test_base_is_valid():
    assert parse({}).name == "full"


# (id, changes, key path the message must name, fragment of the reason)
CASES = [
    ("top-unknown-key", {"nodez": []}, "top level", "unknown key 'nodez' (allowed: name, description, fabric"),
    ("name-pattern", {"name": "Full_Lab"}, "name", "not a valid topology name"),
    ("name-type", {"name": 7}, "name", "expected a string, got 7 (an integer)"),
    ("description-type", {"description": ["x"]}, "description", "expected a string, got a list"),
    ("fabric-type", {"fabric": "192.168.20.0/24"}, "fabric", "expected a mapping"),
    ("fabric-unknown-key", {"fabric.subet": "10.0.0.0/24"}, "fabric", "unknown key 'subet' (allowed: subnet)"),
    ("fabric-not-network", {"fabric.subnet": "192.168.20/24x"}, "fabric.subnet", "is not an IPv4 network"),
    ("fabric-host-bits", {"fabric.subnet": "192.168.20.1/24"}, "fabric.subnet", "host bits set (did you mean 192.168.20.0/24?)"),
    ("fabric-prefix-too-long", {"fabric.subnet": "192.168.20.0/30"}, "fabric.subnet", "between /16 and /29"),
    ("fabric-prefix-too-short", {"fabric.subnet": "192.168.0.0/15"}, "fabric.subnet", "between /16 and /29"),
    ("management-name-pattern", {"management.name": "Mgmt"}, "management.name", "not a valid host name"),
    ("management-ip-outside-fabric", {"management.ip": "10.0.0.1"}, "management.ip", "not inside fabric.subnet"),
    ("management-default-ip-outside-fabric", {"fabric.subnet": "10.0.0.0/24", "management": DELETE}, "management.ip", "not inside fabric.subnet"),
    ("management-ip-broadcast", {"management.ip": "192.168.20.255"}, "management.ip", "broadcast"),
    ("etcd-unknown-node", {"etcd.node": "node9"}, "etcd.node", "unknown node 'node9' (nodes: node1, node2)"),
    ("etcd-port-zero", {"etcd.port": 0}, "etcd.port", "out of range 1..65535"),
    ("etcd-port-too-big", {"etcd.port": 65536}, "etcd.port", "out of range 1..65535"),
    ("etcd-port-string", {"etcd.port": "abc"}, "etcd.port", "expected an integer, got 'abc' (a string)"),
    ("nodes-missing", {"nodes": DELETE}, "nodes", "is required"),
    ("nodes-empty", {"nodes": []}, "nodes", "needs 1 to 16 nodes, got 0"),
    ("nodes-too-many", {"nodes": [{"name": f"n{i}", "ip": f"192.168.20.{i + 1}"} for i in range(17)]}, "nodes", "got 17"),
    ("nodes-string", {"nodes": "node1"}, "nodes", "expected a list"),
    ("node-not-mapping", {"nodes[0]": "node1"}, "nodes[0]", "expected a mapping"),
    ("node-unknown-key", {"nodes[0].adress": "x"}, "nodes[0]", "unknown key 'adress' (allowed: name, ip, as_num, roles)"),
    ("node-name-pattern", {"nodes[0].name": "Node1"}, "nodes[0].name", "not a valid node name"),
    ("node-name-too-long", {"nodes[0].name": "node-1234567"}, "nodes[0].name", "not a valid node name"),
    ("node-name-duplicate", {"nodes[1].name": "node1"}, "nodes[1].name", "'node1' is already used by nodes[0]"),
    ("node-name-is-management", {"nodes[1].name": "mgmt"}, "nodes[1].name", "already used by management.name"),
    ("node-ip-missing", {"nodes[0].ip": DELETE}, "nodes[0].ip", "is required"),
    ("node-ip-not-ipv4", {"nodes[1].ip": "192.168.20.300"}, "nodes[1].ip", "'192.168.20.300' is not an IPv4 address"),
    ("node-ip-outside-fabric", {"nodes[1].ip": "192.168.21.2"}, "nodes[1].ip", "not inside fabric.subnet 192.168.20.0/24"),
    ("node-ip-network-address", {"nodes[1].ip": "192.168.20.0"}, "nodes[1].ip", "network or broadcast"),
    ("node-ip-duplicate", {"nodes[1].ip": "192.168.20.1"}, "nodes[1].ip", "already used by nodes[0]"),
    ("node-ip-is-management", {"nodes[1].ip": "192.168.20.254"}, "nodes[1].ip", "already used by management.ip"),
    ("node-as-bool", {"nodes[1].as_num": True}, "nodes[1].as_num", "expected an integer, got True (a boolean)"),
    ("node-as-range", {"nodes[1].as_num": 2**32}, "nodes[1].as_num", "out of range 1..4294967295"),
    ("node-roles-unknown", {"nodes[0].roles": ["bgp"]}, "nodes[0].roles[0]", "not one of: calico-node, route-reflector"),
    ("node-roles-empty", {"nodes[0].roles": []}, "nodes[0].roles", "must not be empty"),
    ("node-roles-duplicate", {"nodes[0].roles": ["calico-node", "calico-node"]}, "nodes[0].roles", "twice"),
    ("node-roles-string", {"nodes[0].roles": "calico-node"}, "nodes[0].roles", "expected a list"),
    ("bgp-mode", {"bgp.mode": "full"}, "bgp.mode", "not one of: mesh, route-reflector"),
    ("bgp-as-type", {"bgp.as_num": "64511"}, "bgp.as_num", "expected an integer"),
    ("bgp-rr-mode-needs-reflector", {"bgp.route_reflectors": []}, "bgp.route_reflectors", "needs at least one"),
    ("bgp-rr-unknown-node", {"bgp.route_reflectors[0].node": "node9"}, "bgp.route_reflectors[0].node", "unknown node"),
    ("bgp-rr-node-lacks-role", {"bgp.route_reflectors[0].node": "node1"}, "bgp.route_reflectors[0].node", "route-reflector role"),
    ("bgp-rr-duplicate", {"bgp.route_reflectors": [{"node": "node2", "cluster_id": "1.0.0.1"}] * 2}, "bgp.route_reflectors[1].node", "already used"),
    ("bgp-rr-cluster-id", {"bgp.route_reflectors[0].cluster_id": "1.0.0"}, "bgp.route_reflectors[0].cluster_id", "not an IPv4 address"),
    ("bgp-rr-cluster-id-int", {"bgp.route_reflectors[0].cluster_id": 1}, "bgp.route_reflectors[0].cluster_id", "expected a string"),
    ("bgp-peer-ip", {"bgp.peers[0].ip": "peer1"}, "bgp.peers[0].ip", "not an IPv4 address"),
    ("bgp-peer-as-required", {"bgp.peers[0].as_num": DELETE}, "bgp.peers[0].as_num", "is required"),
    ("bgp-peer-unknown-node", {"bgp.peers[1].node": "node9"}, "bgp.peers[1].node", "unknown node 'node9'"),
    ("bgp-peer-duplicate", {"bgp.peers[1].ip": "192.168.20.100", "bgp.peers[1].node": DELETE}, "bgp.peers[1]", "same ip and node as bgp.peers[0]"),
    ("pool-host-bits", {"pools[0].cidr": "10.0.0.1/16"}, "pools[0].cidr", "host bits set"),
    ("pool-smaller-than-block", {"pools[0].cidr": "10.0.0.0/27"}, "pools[0].cidr", "smaller than a /26"),
    ("pool-overlaps-pool", {"pools[1].cidr": "10.0.128.0/24"}, "pools[1].cidr", "overlaps pools[0] (10.0.0.0/16)"),
    ("pool-overlaps-fabric", {"pools[1].cidr": "192.168.0.0/16"}, "pools[1].cidr", "overlaps fabric.subnet"),
    ("pool-overlaps-link-local", {"pools[1].cidr": "169.254.0.0/24"}, "pools[1].cidr", "overlaps the link-local range"),
    ("pool-ipip-string", {"pools[0].ipip": "yes"}, "pools[0].ipip", "expected true or false, got 'yes' (a string)"),
    ("pool-nat-int", {"pools[0].nat_outgoing": 1}, "pools[0].nat_outgoing", "expected true or false"),
    ("network-name-pattern", {"networks[0].name": "-net"}, "networks[0].name", "not a valid network name"),
    ("network-name-duplicate", {"networks[1].name": "net1"}, "networks[1].name", "already used by networks[0]"),
    ("network-subnet-not-pool", {"networks[0].subnet": "10.0.0.0/24"}, "networks[0].subnet", "not one of the pools (10.0.0.0/16, 10.1.0.0/16)"),
    ("network-driver", {"networks[0].driver": "bridge"}, "networks[0].driver", "not one of: calico"),
    ("network-ipam-driver", {"networks[0].ipam_driver": "default"}, "networks[0].ipam_driver", "not one of: calico"),
    ("profile-name-pattern", {"profiles[0].name": "my profile"}, "profiles[0].name", "not a valid profile name"),
    ("profile-name-duplicate", {"profiles": [BASE["profiles"][0]] * 2}, "profiles[1].name", "already used by profiles[0]"),
    ("profile-tag-pattern", {"profiles[0].tags[1]": "a b"}, "profiles[0].tags[1]", "not a valid tag name"),
    ("profile-tag-duplicate", {"profiles[0].tags[1]": "net1"}, "profiles[0].tags", "twice"),
    ("profile-rules-unknown-key", {"profiles[0].rules.in": []}, "profiles[0].rules", "unknown key 'in' (allowed: inbound, outbound)"),
    ("profile-rule-action", {"profiles[0].rules.inbound[0]": "permit from tag web"}, "profiles[0].rules.inbound[0]", "must start with 'allow' or 'deny'"),
    ("profile-rule-empty", {"profiles[0].rules.outbound[0]": ""}, "profiles[0].rules.outbound[0]", "must start with"),
    ("profile-rules-not-list", {"profiles[0].rules.inbound": "allow"}, "profiles[0].rules.inbound", "expected a list"),
    ("workload-name-pattern", {"workloads[0].name": "w 1"}, "workloads[0].name", "not a valid container name"),
    ("workload-name-duplicate", {"workloads[1].name": "w1"}, "workloads[1].name", "already used by workloads[0]"),
    ("workload-node-unknown", {"workloads[0].node": "node9"}, "workloads[0].node", "unknown node 'node9'"),
    ("workload-node-lacks-role", {"nodes[1].roles": ["route-reflector"]}, "workloads[1].node", "does not have the calico-node role"),
    ("workload-network-unknown", {"workloads[0].network": "net9"}, "workloads[0].network", "unknown network 'net9' (networks: net1, net2)"),
    ("workload-ip-outside-subnet", {"workloads[0].ip": "10.1.0.5"}, "workloads[0].ip", "not inside network net1's subnet 10.0.0.0/16"),
    ("workload-ip-outside-pools", {"workloads[1].ip": "10.9.0.5"}, "workloads[1].ip", "not inside any pool"),
    ("workload-ip-duplicate", {"workloads[1].ip": "10.0.0.5"}, "workloads[1].ip", "already used by workloads[0]"),
    ("workload-ip-not-ipv4", {"workloads[0].ip": "10.0.0"}, "workloads[0].ip", "not an IPv4 address"),
    ("workload-image-empty", {"workloads[0].image": ""}, "workloads[0].image", "must not be empty"),
    ("workload-command-empty", {"workloads[0].command": []}, "workloads[0].command", "must not be empty"),
    ("workload-command-item-type", {"workloads[0].command": ["sleep", 10]}, "workloads[0].command[1]", "expected a string"),
]


@pytest.mark.parametrize("changes, path, reason", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_validation_rule(changes, path, reason):
    with pytest.raises(TopologyError) as exc:
        parse(changes)
    message = str(exc.value)
    assert message.startswith(f"t.yaml: {path}: "), message
    assert reason in message
    assert "\n" not in message


def test_seed_topology():
    seed = load_topology("seed")
    assert "seed" in list_topologies()
    assert seed.name == "seed"
    assert seed.fabric.subnet == "192.168.20.0/24"
    assert (seed.management.name, seed.management.ip) == ("mgmt", "192.168.20.254")
    assert seed.node_names == ("node1", "node2")
    assert [n.ip for n in seed.nodes] == ["192.168.20.1", "192.168.20.2"]
    assert all(n.roles == ("calico-node",) and n.as_num is None for n in seed.nodes)
    assert (seed.bgp.mode, seed.bgp.as_num) == ("mesh", 64511)
    assert seed.etcd_url == "http://192.168.20.1:2379"
    assert seed.etcd_authority == "192.168.20.1:2379"
    # the tutorial's Calico objects (issue #3)
    assert [(p.cidr, p.ipip, p.nat_outgoing) for p in seed.pools] == [
        ("192.168.21.0/24", True, True), ("192.168.22.0/24", False, False),
        ("192.168.23.0/24", False, False), ("192.168.24.0/24", False, False)]
    assert [(n.name, n.subnet) for n in seed.networks] == [
        ("web", "192.168.22.0/24"), ("mysqldb", "192.168.23.0/24"), ("app", "192.168.24.0/24"),
        ("db-users", None)]
    assert {p.name: p.rules.inbound for p in seed.profiles}["db-users"] == ()
    assert {w.name: (w.node, w.ip) for w in seed.workloads}["web_container_1"] == ("node1", "192.168.22.1")
    assert load_topology(str(TOPOLOGY_DIR / "seed.yaml")) == seed


def test_defaults_and_normalisation():
    topo = parse_topology({"nodes": [{"name": "a", "ip": "192.168.20.1"}], "fabric": {"subnet": "192.168.20.0/255.255.255.0"},
                           "pools": [{"cidr": "10.0.0.0/16"}], "networks": [{"name": "n"}],
                           "workloads": [{"name": "w", "node": "a", "network": "n", "command": "sleep 1"}]}, "lab/topologies/mini.yaml")
    assert topo.name == "mini"  # from the file stem
    assert topo.fabric.subnet == "192.168.20.0/24"
    assert topo.etcd.node == "a" and topo.etcd.port == 2379
    assert topo.bgp.mode == "mesh" and topo.bgp.as_num == 64511
    assert topo.pools[0].ipip is False and topo.pools[0].nat_outgoing is False
    assert (topo.networks[0].driver, topo.networks[0].ipam_driver, topo.networks[0].subnet) == ("calico", "calico", None)
    assert topo.workloads[0].image == "calico-net-test:1.0"
    assert topo.workloads[0].command == ("sh", "-c", "sleep 1")


def test_round_trip_is_exact_and_hashable():
    for topo in (parse({}), load_topology("seed")):
        data = topo.to_dict()
        assert json.loads(json.dumps(data)) == data
        assert Topology.from_dict(data) == topo
        assert Topology.from_dict(data).to_dict() == data
        assert hash(topo) == hash(Topology.from_dict(data))


def test_unknown_node_lookup():
    topo = parse({})
    assert topo.node("node2").as_num == 64512
    with pytest.raises(TopologyError, match=re.escape("unknown node 'x' (nodes: node1, node2)")):
        topo.node("x")


def test_default_name_must_be_valid():
    with pytest.raises(TopologyError, match=r"^My_Lab.yaml: name: is required: the file name 'My_Lab'"):
        parse_topology({"nodes": [{"name": "a", "ip": "192.168.20.1"}]}, "My_Lab.yaml")


def load_text(tmp_path, text, name="t.yaml"):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(TopologyError) as exc:
        load_topology(str(path))
    assert "\n" not in str(exc.value)
    return str(exc.value).replace(str(path), name)


def test_malformed_yaml_gives_line_and_column(tmp_path):
    message = load_text(tmp_path, "name: x\nnodes:\n  - name: [a\n    ip: b\n")
    assert message == "t.yaml: line 4, column 7: not valid YAML: expected ',' or ']', but got ':'"
    message = load_text(tmp_path, "name: x\nfabric: {subnet: a}\nname: y\n")
    assert message == "t.yaml: line 3, column 1: not valid YAML: duplicate key 'name'"
    message = load_text(tmp_path, "name: x\ndescription: \"a\x01\"\n")
    assert message == "t.yaml: line 2, column 16: not valid YAML: unacceptable character #x0001"


def test_empty_file(tmp_path):
    assert load_text(tmp_path, "") == "t.yaml: top level: expected a mapping, got null"


@pytest.mark.parametrize("text, path", [
    pytest.param("- name: node1\n", "top level", id="top-level-list"),
    pytest.param("nodes: node1\n", "nodes", id="nodes-string"),
    pytest.param("nodes: [{name: a, ip: 192.168.20.1}]\netcd: {port: abc}\n", "etcd.port", id="port-string"),
    pytest.param("nodes: [{name: a, ip: 192.168.20.1}]\npools: [{cidr: 10.0.0.0/16, ipip: 'yes'}]\n", "pools[0].ipip", id="ipip-string"),
    pytest.param("nodes: [null]\n", "nodes[0]", id="node-null"),
    pytest.param("nodes: [{name: a, ip: 192.168.20.1}]\nbgp: [mesh]\n", "bgp", id="bgp-list"),
])
def test_wrong_types_from_yaml(tmp_path, text, path):
    assert load_text(tmp_path, text).startswith(f"t.yaml: {path}: expected ")


def test_missing_topology():
    with pytest.raises(TopologyError) as exc:
        load_topology("nosuch")
    assert str(exc.value).startswith("nosuch: no such topology (known topologies: rr, rr2, seed")
    assert str(exc.value).endswith("; or give a path to a .yaml file)")
    with pytest.raises(TopologyError, match=r"^no/such\.yaml: no such topology"):
        load_topology("no/such.yaml")


def _paths(value, path=""):
    """Every key path in a nested structure (same syntax as the error messages)."""
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield from _paths(item, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}".lstrip("."))


@pytest.mark.parametrize("junk", [None, [], {}, "x", 0, True, 1.5, [None], {"x": 1}], ids=repr)
def test_any_wrong_value_anywhere_is_a_topology_error(junk):
    """No malformed input may escape as a KeyError/TypeError/ValueError."""
    for path in list(_paths(BASE))[1:]:
        try:
            parse({path: junk})
        except TopologyError as err:
            assert "\n" not in str(err)
    with pytest.raises(TopologyError):
        parse_topology(junk, "t.yaml")
