"""Load and validate a lab topology (a YAML file under lab/topologies/) into frozen dataclasses.

Everything a later module needs to know about the lab (hosts, BGP, pools, networks,
profiles, workloads) is checked here once, so that a typo fails fast with a one-line
`<file>: <key path>: <reason>` TopologyError instead of a half-built lab.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from lab.calico import rules as calico_rules
from lab.errors import TopologyError
# The model's parts and the constants shared with inventories live in lab.schema; they are
# imported from here too (`from lab.topology import ROLE_CALICO_NODE, Node`), which stays so.
from lab.schema import (
    DEFAULT_AS, MAX_AS, ROLE_CALICO_NODE, ROLE_ROUTE_REFLECTOR, ROLES, TOPOLOGY_NAME, Bgp,
    BgpPeer, Etcd, Fabric, Management, Network, Node, Pool, Profile, RouteReflector, Rules,
    Workload,
)
from lab.schema import (
    Check, boolean, describe, int_in, ipv4, list_of, load_yaml, matching, non_empty_str,
    one_line, one_of, parse_or_none, plain, read_limited, sequence, show, string,
)

TOPOLOGY_DIR = Path(__file__).resolve().parent / "topologies"

BGP_MODES = ("mesh", "route-reflector")
MAX_NODES = 16
SMALLEST_POOL_PREFIX = 26  # Calico IPAM hands out /26 blocks, so a pool must hold one
LINK_LOCAL = ipaddress.IPv4Network("169.254.0.0/16")  # Calico uses 169.254.1.1 as the gateway

DEFAULT_SUBNET = "192.168.20.0/24"
DEFAULT_MANAGEMENT = ("mgmt", "192.168.20.254")
DEFAULT_ETCD_PORT = 2379
DEFAULT_IMAGE = "calico-net-test:1.0"

# Short: node names end up inside interface and network-namespace names (15-char limit).
NODE_NAME = re.compile(r"[a-z][a-z0-9-]{0,10}")
DOCKER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
CALICO_NAME = re.compile(r"[a-zA-Z0-9_.-]+")  # what calicoctl accepts for profile/tag names
MAX_BYTES = 256 << 10  # a 16-node lab is a few KiB; PyYAML needs ~1 s per 100 KiB


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Topology:
    """A whole lab, from a topology file (or saved state); its parts are lab.schema's."""

    name: str
    description: str
    fabric: Fabric
    management: Management
    etcd: Etcd
    nodes: tuple[Node, ...]
    bgp: Bgp
    pools: tuple[Pool, ...]
    networks: tuple[Network, ...]
    profiles: tuple[Profile, ...]
    workloads: tuple[Workload, ...]
    # what the network must allow and deny, as statements the suite reads (fixtures/expect/
    # intent.py has their grammar; lab/ only keeps them)
    intent: tuple[str, ...] = ()

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(node.name for node in self.nodes)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise TopologyError(f"unknown node {name!r} (nodes: {', '.join(self.node_names)})")

    @property
    def etcd_authority(self) -> str:
        return f"{self.node(self.etcd.node).ip}:{self.etcd.port}"

    @property
    def etcd_url(self) -> str:
        return f"http://{self.etcd_authority}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data in the file's own schema, defaults filled in."""
        return plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Topology:
        """Rebuild from to_dict() output (e.g. saved lab state), re-validating it."""
        return parse_topology(data, "<state>")


# --------------------------------------------------------------------------- loading


def list_topologies() -> list[str]:
    return sorted(path.stem for path in TOPOLOGY_DIR.glob("*.yaml"))


def load_topology(name_or_path: str | os.PathLike[str]) -> Topology:
    """Load a bundled topology by bare name ("seed") or any YAML file by path."""
    given = os.fspath(name_or_path)
    is_name = (
        not isinstance(name_or_path, os.PathLike)
        and "/" not in given
        and not given.endswith((".yaml", ".yml"))
    )
    path = TOPOLOGY_DIR / f"{given}.yaml" if is_name else Path(given)
    source = _display_path(path) if is_name else given
    try:
        text = read_limited(path, MAX_BYTES, source, "topology")
    except FileNotFoundError:
        known = ", ".join(list_topologies()) or "none"
        raise TopologyError(
            f"{given}: no such topology (known topologies: {known}; or give a path to a .yaml file)"
        ) from None
    except OSError as err:
        raise TopologyError(f"{source}: cannot read: {err.strerror or err}") from None
    return parse_topology(load_yaml(text, source), source)


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- validation helpers


def _names(items: Any) -> str:
    return ", ".join(items) or "none"


@dataclass(frozen=True)
class _Loc:
    """Where a value sits (file and key path), so that every error can name both."""

    source: str
    path: str = ""

    def key(self, key: str) -> _Loc:
        return _Loc(self.source, f"{self.path}.{key}" if self.path else key)

    def index(self, index: int) -> _Loc:
        return _Loc(self.source, f"{self.path}[{index}]")

    def fail(self, reason: str) -> NoReturn:
        raise TopologyError(f"{self.source}: {self.path or 'top level'}: {reason}")


_REQUIRED = object()


class _Reader:
    """A mapping at a known key path: rejects unknown keys (typos) up front and hands
    each value, with its own path, to a checker."""

    def __init__(self, loc: _Loc, value: object, allowed: tuple[str, ...]):
        if not isinstance(value, dict):
            loc.fail(f"expected a mapping, got {describe(value)}")
        for key in value:
            if key not in allowed:
                loc.fail(f"unknown key {show(key)} (allowed: {', '.join(allowed)})")
        self.loc = loc
        self._data = value

    def get(self, key: str, check: Check, default: Any = _REQUIRED) -> Any:
        value = self._data.get(key)
        if value is None:  # absent, or YAML's bare `key:` - both mean "use the default"
            if default is _REQUIRED:
                self.loc.key(key).fail("is required")
            return default
        return check(self.loc.key(key), value)

    def section(self, key: str, allowed: tuple[str, ...]) -> _Reader:
        return _Reader(self.loc.key(key), self.get(key, lambda _loc, v: v, {}), allowed)

    def items(self, key: str, required: bool = False) -> list[tuple[_Loc, Any]]:
        """A list's entries with their own paths (key[0], key[1], ...)."""
        value = self.get(key, sequence, _REQUIRED if required else [])
        return [(self.loc.key(key).index(i), item) for i, item in enumerate(value)]


def _network(low: int, high: int) -> Check:
    """A strict IPv4 network (host bits zero) with a prefix length in low..high."""
    def check(loc: _Loc, value: object) -> ipaddress.IPv4Network:
        text = string(loc, value)
        net = parse_or_none(ipaddress.IPv4Network, text)
        if net is None:
            loose = parse_or_none(lambda t: ipaddress.IPv4Network(t, strict=False), text)
            if loose is None:
                loc.fail(f"{show(value)} is not an IPv4 network like 10.0.0.0/16")
            loc.fail(f"{show(value)} has host bits set (did you mean {loose}?)")
        if not low <= net.prefixlen <= high:
            loc.fail(f"{net} has prefix /{net.prefixlen}; it must be between /{low} and /{high}")
        return net
    return check


def _host_in(subnet: ipaddress.IPv4Network, what: str) -> Check:
    """An IPv4 address usable by a host inside subnet."""
    def check(loc: _Loc, value: object) -> str:
        ip = ipaddress.IPv4Address(ipv4(loc, value))
        if ip not in subnet:
            loc.fail(f"{ip} is not inside {what} {subnet}")
        if ip in (subnet.network_address, subnet.broadcast_address):
            loc.fail(f"{ip} is the network or broadcast address of {what} {subnet}")
        return str(ip)
    return check


def _claim(loc: _Loc, value: Any, owners: dict[Any, str], owner: str) -> None:
    """Record that owner uses value (a name, an IP) and fail if someone already does."""
    if value in owners:
        loc.fail(f"{show(value)} is already used by {owners[value]}")
    owners[value] = owner


def _command(loc: _Loc, value: object) -> tuple[str, ...]:
    if isinstance(value, str):  # a shell one-liner, as `docker run image sh -c '...'`
        return ("sh", "-c", non_empty_str(loc, value))
    command = list_of(string)(loc, value)
    if not command:
        loc.fail("must not be empty (leave it out to run the image's default command)")
    return command


# --------------------------------------------------------------------------- sections

TOP_KEYS = ("name", "description", "fabric", "management", "etcd", "nodes", "bgp",
            "pools", "networks", "profiles", "workloads", "intent")


def parse_topology(data: object, source: str) -> Topology:
    """Validate already-loaded YAML data; source names the file in error messages."""
    top = _Reader(_Loc(source), data, TOP_KEYS)
    name = top.get("name", matching(TOPOLOGY_NAME, "topology name"), None)
    if name is None:
        name = Path(source).stem
        if not TOPOLOGY_NAME.fullmatch(name):
            top.loc.key("name").fail(
                f"is required: the file name {name!r} is not a valid topology name "
                f"(must match {TOPOLOGY_NAME.pattern})"
            )
    description = top.get("description", string, "")
    fabric = _parse_fabric(top.section("fabric", ("subnet",)))
    subnet = ipaddress.IPv4Network(fabric.subnet)
    management = _parse_management(top.section("management", ("name", "ip")), subnet)
    nodes = _parse_nodes(top, subnet, management)
    by_name = {node.name: node for node in nodes}
    pools = _parse_pools(top, subnet)
    networks = _parse_networks(top, pools)
    return Topology(
        name=name,
        description=description,
        fabric=fabric,
        management=management,
        etcd=_parse_etcd(top.section("etcd", ("node", "port")), by_name),
        nodes=nodes,
        bgp=_parse_bgp(top.section("bgp", ("mode", "as_num", "route_reflectors", "peers")), by_name),
        pools=pools,
        networks=networks,
        profiles=_parse_profiles(top),
        workloads=_parse_workloads(top, by_name, networks, pools),
        intent=top.get("intent", list_of(non_empty_str), ()),
    )


def _parse_fabric(r: _Reader) -> Fabric:
    return Fabric(subnet=str(r.get("subnet", _network(16, 29), ipaddress.IPv4Network(DEFAULT_SUBNET))))


def _parse_management(r: _Reader, subnet: ipaddress.IPv4Network) -> Management:
    name, ip = DEFAULT_MANAGEMENT
    return Management(
        name=r.get("name", matching(NODE_NAME, "host name"), name),
        # The default must still fit a non-default fabric, so check it too.
        ip=_host_in(subnet, "fabric.subnet")(r.loc.key("ip"), r.get("ip", ipv4, ip)),
    )


def _check_node(loc: _Loc, value: object, nodes: dict[str, Node]) -> Node:
    if string(loc, value) not in nodes:
        loc.fail(f"unknown node {value!r} (nodes: {_names(nodes)})")
    return nodes[value]


def _parse_nodes(top: _Reader, subnet: ipaddress.IPv4Network, management: Management) -> tuple[Node, ...]:
    entries = top.items("nodes", required=True)
    if not 1 <= len(entries) <= MAX_NODES:
        top.loc.key("nodes").fail(f"needs 1 to {MAX_NODES} nodes, got {len(entries)}")
    names = {management.name: "management.name"}
    ips = {management.ip: "management.ip"}
    nodes = []
    for loc, entry in entries:
        r = _Reader(loc, entry, ("name", "ip", "as_num", "roles"))
        node = Node(
            name=r.get("name", matching(NODE_NAME, "node name")),
            ip=r.get("ip", _host_in(subnet, "fabric.subnet")),
            as_num=r.get("as_num", int_in(1, MAX_AS), None),
            roles=r.get("roles", list_of(one_of(*ROLES)), (ROLE_CALICO_NODE,)),
        )
        _claim(loc.key("name"), node.name, names, loc.path)
        _claim(loc.key("ip"), node.ip, ips, loc.path)
        if not node.roles:
            loc.key("roles").fail(f"must not be empty (roles: {', '.join(ROLES)})")
        if len(set(node.roles)) != len(node.roles):
            loc.key("roles").fail(f"lists a role twice: {list(node.roles)}")
        nodes.append(node)
    return tuple(nodes)


def _parse_etcd(r: _Reader, nodes: dict[str, Node]) -> Etcd:
    first = next(iter(nodes))
    return Etcd(
        node=r.get("node", lambda loc, v: _check_node(loc, v, nodes).name, first),
        port=r.get("port", int_in(1, 65535), DEFAULT_ETCD_PORT),
    )


def _parse_bgp(r: _Reader, nodes: dict[str, Node]) -> Bgp:
    mode = r.get("mode", one_of(*BGP_MODES), "mesh")
    as_num = r.get("as_num", int_in(1, MAX_AS), DEFAULT_AS)

    reflectors: list[RouteReflector] = []
    reflector_nodes: dict[str, str] = {}
    for loc, entry in r.items("route_reflectors"):
        rr = _Reader(loc, entry, ("node", "cluster_id"))
        node = rr.get("node", lambda l, v: _check_node(l, v, nodes))
        if ROLE_ROUTE_REFLECTOR not in node.roles:
            loc.key("node").fail(f"node {node.name} does not have the {ROLE_ROUTE_REFLECTOR} role")
        _claim(loc.key("node"), node.name, reflector_nodes, loc.path)
        reflectors.append(RouteReflector(node=node.name, cluster_id=rr.get("cluster_id", ipv4)))
    if mode == "route-reflector" and not reflectors:
        r.loc.key("route_reflectors").fail("mode route-reflector needs at least one route reflector")

    peers: list[BgpPeer] = []
    seen_peers: dict[tuple[str, str | None], str] = {}  # calicoctl keys a peer by (ip, node)
    for loc, entry in r.items("peers"):
        p = _Reader(loc, entry, ("ip", "as_num", "node"))
        peer = BgpPeer(
            ip=p.get("ip", ipv4),
            as_num=p.get("as_num", int_in(1, MAX_AS)),
            node=p.get("node", lambda l, v: _check_node(l, v, nodes).name, None),
        )
        if (peer.ip, peer.node) in seen_peers:
            loc.fail(f"same ip and node as {seen_peers[peer.ip, peer.node]}")
        seen_peers[peer.ip, peer.node] = loc.path
        peers.append(peer)
    return Bgp(mode=mode, as_num=as_num, route_reflectors=tuple(reflectors), peers=tuple(peers))


def _parse_pools(top: _Reader, subnet: ipaddress.IPv4Network) -> tuple[Pool, ...]:
    taken = [("fabric.subnet", subnet), ("the link-local range", LINK_LOCAL)]
    pools = []
    for loc, entry in top.items("pools"):
        r = _Reader(loc, entry, ("cidr", "ipip", "nat_outgoing"))
        cidr = r.get("cidr", _network(0, 32))
        if cidr.prefixlen > SMALLEST_POOL_PREFIX:
            loc.key("cidr").fail(
                f"{cidr} is smaller than a /{SMALLEST_POOL_PREFIX}: Calico IPAM allocates "
                f"/{SMALLEST_POOL_PREFIX} blocks, so a pool must hold at least one"
            )
        for owner, other in taken:
            if cidr.overlaps(other):
                loc.key("cidr").fail(f"{cidr} overlaps {owner} ({other})")
        taken.append((loc.path, cidr))
        pools.append(Pool(
            cidr=str(cidr),
            ipip=r.get("ipip", boolean, False),
            nat_outgoing=r.get("nat_outgoing", boolean, False),
        ))
    return tuple(pools)


def _parse_networks(top: _Reader, pools: tuple[Pool, ...]) -> tuple[Network, ...]:
    cidrs = [pool.cidr for pool in pools]
    names: dict[str, str] = {}
    networks = []
    for loc, entry in top.items("networks"):
        r = _Reader(loc, entry, ("name", "subnet", "driver", "ipam_driver"))
        network = Network(
            name=r.get("name", matching(DOCKER_NAME, "network name")),
            subnet=r.get("subnet", lambda l, v: str(_network(0, 32)(l, v)), None),
            driver=r.get("driver", one_of("calico"), "calico"),
            ipam_driver=r.get("ipam_driver", one_of("calico"), "calico"),
        )
        _claim(loc.key("name"), network.name, names, loc.path)
        if network.subnet is not None and network.subnet not in cidrs:
            loc.key("subnet").fail(
                f"{network.subnet} is not one of the pools ({_names(cidrs)}): "
                "Calico needs a network's --subnet to be a whole pool"
            )
        networks.append(network)
    return tuple(networks)


RULE_GRAMMAR = ("allow|deny [tcp|udp|icmp|icmpv6 [type T [code C]]] [from [ports P] [tag T] "
                "[cidr C]] [to [ports P] [tag T] [cidr C]]; ports: N or N,M,… within 0-65535")


def _rule(profile: str) -> Check:
    """A rule as `calicoctl profile NAME rule add DIRECTION RULE…` takes it, checked now with
    calicoctl's own grammar (lab/calico/rules.py), so that a typo fails here, not in `up`."""
    def check(loc: _Loc, value: object) -> str:
        text = string(loc, value)
        where = f"profile {profile}: rule {show(text)}"
        try:
            words = shlex.split(text)
        except ValueError as err:
            loc.fail(f"{where}: cannot be split into words ({str(err).lower()}): close the quote")
        if not words or words[0] not in ("allow", "deny"):
            loc.fail(f"{where} must start with 'allow' or 'deny'")
        try:
            calico_rules.to_stored_json_dict(calico_rules.parse_rule(words))
        except calico_rules.PortRangeCrash:
            loc.fail(f"{where}: a port range crashes calicoctl 0.22 (libcalico stores every port "
                     "with int()): list the ports one by one")
        except calico_rules.RuleError as err:
            loc.fail(f"{where}: {one_line(str(err))} (grammar: {RULE_GRAMMAR})")
        return text
    return check


def _parse_profiles(top: _Reader) -> tuple[Profile, ...]:
    names: dict[str, str] = {}
    profiles = []
    for loc, entry in top.items("profiles"):
        r = _Reader(loc, entry, ("name", "tags", "rules"))
        name = r.get("name", matching(CALICO_NAME, "profile name"))
        _claim(loc.key("name"), name, names, loc.path)
        tags = r.get("tags", list_of(matching(CALICO_NAME, "tag name")), ())
        if len(set(tags)) != len(tags):
            loc.key("tags").fail(f"lists a tag twice: {list(tags)}")
        rules = r.section("rules", ("inbound", "outbound"))
        profiles.append(Profile(name=name, tags=tags, rules=Rules(
            inbound=rules.get("inbound", list_of(_rule(name)), None),
            outbound=rules.get("outbound", list_of(_rule(name)), None),
        )))
    return tuple(profiles)


def _parse_workloads(
    top: _Reader, nodes: dict[str, Node], networks: tuple[Network, ...], pools: tuple[Pool, ...]
) -> tuple[Workload, ...]:
    by_network = {network.name: network for network in networks}
    pool_nets = [ipaddress.IPv4Network(pool.cidr) for pool in pools]
    names: dict[str, str] = {}
    ips: dict[str, str] = {}
    workloads = []
    for loc, entry in top.items("workloads"):
        r = _Reader(loc, entry, ("name", "node", "network", "ip", "image", "command"))
        name = r.get("name", matching(DOCKER_NAME, "container name"))
        _claim(loc.key("name"), name, names, loc.path)
        node = r.get("node", lambda l, v: _check_node(l, v, nodes))
        if ROLE_CALICO_NODE not in node.roles:
            loc.key("node").fail(f"node {node.name} does not have the {ROLE_CALICO_NODE} role")
        network = r.get("network", string)
        if network not in by_network:
            loc.key("network").fail(f"unknown network {network!r} (networks: {_names(by_network)})")
        subnet = by_network[network].subnet
        ip = r.get("ip", ipv4, None)
        if ip is not None:
            address = ipaddress.IPv4Address(ip)
            if subnet is not None and address not in ipaddress.IPv4Network(subnet):
                loc.key("ip").fail(f"{ip} is not inside network {network}'s subnet {subnet}")
            if subnet is None and not any(address in pool for pool in pool_nets):
                loc.key("ip").fail(f"{ip} is not inside any pool (pools: {_names(map(str, pool_nets))})")
            _claim(loc.key("ip"), ip, ips, loc.path)
        workloads.append(Workload(
            name=name,
            node=node.name,
            network=network,
            ip=ip,
            image=r.get("image", non_empty_str, DEFAULT_IMAGE),
            command=r.get("command", _command, None),
        ))
    return tuple(workloads)
