"""Spec §8, items 1–22: every observable invariant of a calicoctl 0.22 + libnetwork 0.9
deployment, checked on the real embedded seed lab.

One seed lab for the module (`python -m lab up` / `down`). Everything asserted is observed on
the running system: etcd through python-etcd (every request made from inside the lab's
management namespace), `ip -j`, `iptables-save`, `ipset`, `birdc` and `calicoctl` inside the
nodes, the Docker SDK against each node's dockerd, `docker exec` into workloads for their
own view and for traffic (busybox ping / nc), and scapy inside a workload's network namespace
for the anti-spoofing checks.

Order matters: the read-only checks come first (1–12, 14, 16, 18, 19, 21), then the ones that
change the lab and put it back (13, 15, 17, 16's DNS/DHCP part, 20, 22). Names this module
creates start with RUN. Item 22 runs calico/routereflector's confd + BIRD (lab.calico.bird
routereflector) in the management namespace, at the management host's address.
"""
from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass

import docker.types
import etcd
import pytest

from lab.provision import ipip_supported

from lab import docker_api, image, netns, paths, state
from lab.errors import LabError
from lab.proc import process_start_ticks, run, wait_until
from lab.topology import load_topology
from lab.transport import lab_hosts
from tests.helpers import ROOT, lab_cli

pytestmark = pytest.mark.lab

SEED = load_topology("seed")
NODES = SEED.node_names
RUN = f"inv{uuid.uuid4().hex[:6]}"          # names of what this module creates
FRESH_POOL = "192.168.30.0/24"               # inside 192.168.0.0/16, unused by the seed
GATEWAY = "169.254.1.1"                      # libnetwork 0.9's dummy next hop
MAC = "ee:ee:ee:ee:ee:ee"
BIRD_CTL = "/var/run/calico/bird.ctl"
AS_NUM = str(SEED.bgp.as_num)
POOLS = "/calico/v1/ipam/v4/pool"
BLOCKS = "/calico/ipam/v2/assignment/ipv4/block"


def dash(cidr) -> str:
    return str(cidr).replace("/", "-")


def felix_short(name: str) -> str:
    """Felix's uniquely_shorten(name, 16), written from spec §5.4 (not imported from lab.calico)."""
    if len(name) <= 16 and not (len(name) == 16 and name.startswith("_")):
        return name
    return "_" + hashlib.sha256(f"16 {name}".encode()).hexdigest()[:15]


def mesh_name(ip: str) -> str:
    return ip.replace(".", "_")


def settle(observe, expected, timeout: float, what: str, ok=None):
    """Poll observe() until it equals `expected` (or ok(seen) holds); fail saying what was
    expected and what was last seen. Returns the last observation."""
    ok = ok or (lambda seen: seen == expected)
    last: list = [None]

    def poll():
        last[0] = observe()
        return ok(last[0])
    try:
        wait_until(poll, timeout, what, 0.2)
    except LabError:
        pytest.fail(f"{what}: expected {expected!r} within {timeout:g}s, saw {last[0]!r}")
    return last[0]


# -- the lab and how to look at it -----------------------------------------------------------

class LabEtcd:
    """python-etcd, every request made from inside the lab's management namespace."""

    def __init__(self, mgmt_netns: str, authority: str) -> None:
        self.mgmt = mgmt_netns
        host, port = authority.rsplit(":", 1)
        with netns.inside(self.mgmt):
            self.client = etcd.Client(host=host, port=int(port))

    def _do(self, fn, *args, **kwargs):
        with netns.inside(self.mgmt):
            return fn(*args, **kwargs)

    def get(self, key: str) -> str | None:
        """The value ('' for an empty value), None when the key is absent or a directory."""
        try:
            node = self._do(self.client.read, key)
        except etcd.EtcdKeyNotFound:
            return None
        return None if node.dir else (node.value or "")

    def json(self, key: str):
        value = self.get(key)
        return None if value is None else json.loads(value)

    def exists(self, key: str) -> bool:
        try:
            self._do(self.client.read, key)
        except etcd.EtcdKeyNotFound:
            return False
        return True

    def children(self, key: str) -> dict[str, str | None]:
        """Every leaf under `key` (empty directories as None), {} when `key` is absent."""
        try:
            result = self._do(self.client.read, key, recursive=True)
        except etcd.EtcdKeyNotFound:
            return {}
        return {n.key: (None if n.dir else (n.value or "")) for n in result.leaves
                if n.key != key.rstrip("/")}

    def write(self, key: str, value: str) -> None:
        self._do(self.client.write, key, value)

    def delete(self, key: str, recursive: bool = False) -> None:
        self._do(self.client.delete, key, recursive=recursive, dir=recursive)


@dataclass
class Lab:
    st: state.LabState
    etcd: LabEtcd
    hosts: dict
    dockers: dict

    @property
    def topo(self):
        return self.st.topology

    def ip(self, node: str) -> str:
        return self.topo.node(node).ip

    def sh(self, node: str, *argv: str, timeout: float = 30) -> str:
        res = self.hosts[node].run(list(argv), timeout=timeout)
        assert res.ok, (f"{node}: expected `{shlex.join(argv)}` to succeed, got exit {res.rc}: "
                        f"{(res.stderr or res.stdout).strip()}")
        return res.stdout

    def ip_json(self, node: str, *args: str) -> list:
        return json.loads(self.sh(node, "ip", "-j", *args) or "[]")

    def calicoctl(self, node: str, *args: str) -> str:
        return self.sh(node, "calicoctl", *args, timeout=90)

    def container(self, node: str, name: str):
        return self.dockers[node].containers.get(name)

    def exec(self, node: str, name: str, *argv: str) -> tuple[int, str]:
        res = self.container(node, name).exec_run(list(argv))
        return res.exit_code, res.output.decode(errors="replace")

    def network_id(self, network: str) -> str:
        return self.dockers[NODES[0]].networks.get(network).id


def workload_node(name: str) -> str:
    return next(w.node for w in SEED.workloads if w.name == name)


def workload_ip(lab: Lab, name: str) -> str:
    w = next(w for w in SEED.workloads if w.name == name)
    return lab.container(w.node, name).attrs["NetworkSettings"]["Networks"][w.network]["IPAddress"]


def endpoints(lab: Lab) -> dict[str, dict]:
    """Every workload endpoint in etcd, key → JSON."""
    pattern = re.compile(r"^/calico/v1/host/[^/]+/workload/[^/]+/[^/]+/endpoint/[^/]+$")
    return {k: json.loads(v) for k, v in lab.etcd.children("/calico/v1/host").items()
            if pattern.match(k) and v}


def datastore_values(lab: Lab) -> dict[str, str]:
    """Every value under /calico (empty directories left out: deleting the last key of a
    directory leaves it behind, as with the 2016 tools)."""
    return {k: v for k, v in lab.etcd.children("/calico").items() if v is not None}


@pytest.fixture(scope="module")
def lab():
    up = lab_cli("up", timeout=300)
    assert up.returncode == 0, f"expected `python -m lab up` to succeed:\n{up.stdout}{up.stderr}"
    dockers = {}
    try:
        st = state.load()
        dockers = {n: docker_api.client(paths.NodePaths(n).docker_sock, timeout=60) for n in NODES}
        the_lab = Lab(st, LabEtcd(st.mgmt_netns_file, st.topology.etcd_authority),
                      lab_hosts(st.topology), dockers)
        found = datastore_values(the_lab)
        yield the_lab
        left = datastore_values(the_lab)
        changed = {k: (found.get(k), left.get(k)) for k in found.keys() | left.keys()
                   if found.get(k) != left.get(k)}
        assert changed == {}, f"expected the tests to leave etcd as they found it; " \
                              f"key: (before, after): {changed}"
    finally:
        for c in dockers.values():
            c.close()
        down = lab_cli("down", timeout=300)
        assert down.returncode == 0, f"expected `python -m lab down` to succeed:\n{down.stderr}"


# -- probes ----------------------------------------------------------------------------------

def ping(lab: Lab, src: str, ip: str) -> bool:
    rc, _ = lab.exec(workload_node(src), src, "ping", "-c", "1", "-W", "2", ip)
    return rc == 0


def tcp(lab: Lab, src: str, ip: str, port: int) -> str:
    """What a busybox nc client reads from ip:port ('x' from our listeners), or why not."""
    rc, out = lab.exec(workload_node(src), src, "nc", "-w", "2", ip, str(port))
    return out.strip() if rc == 0 else f"no connection ({out.strip()})"


@contextlib.contextmanager
def listening(lab: Lab, name: str, port: int):
    """`nc -ll -p PORT -e echo x` in workload `name` (a detached exec), stopped by its PID."""
    node = workload_node(name)
    api = lab.dockers[node].api
    ex = api.exec_create(name, ["nc", "-ll", "-p", str(port), "-e", "echo", "x"])["Id"]
    api.exec_start(ex, detach=True)
    pid = settle(lambda: api.exec_inspect(ex)["Pid"], "a PID", 10,
                 f"the nc listener in {name} to start", ok=bool)
    ticks = process_start_ticks(pid)
    try:
        settle(lambda: tcp(lab, name, "127.0.0.1", port), "x", 10,
               f"{name}: nc listening on tcp {port}")
        yield
    finally:
        if ticks is not None and process_start_ticks(pid) == ticks:
            os.kill(pid, signal.SIGTERM)
        settle(lambda: api.exec_inspect(ex)["Running"], False, 10,
               f"{name}: the nc listener on {port} (pid {pid}) to exit")


# -- BGP views -------------------------------------------------------------------------------

def parse_bgp(text: str) -> dict[str, str]:
    """BGP rows of `birdc show protocols`: name → info column ('Established', 'Active …', …)."""
    rows = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 4 and cols[1] == "BGP":
            rows[cols[0]] = " ".join(cols[5:]) or cols[3]
    return rows


def bgp_protocols(lab: Lab, node: str) -> dict[str, str]:
    return parse_bgp(lab.sh(node, "birdc", "-s", BIRD_CTL, "show", "protocols", timeout=10))


def established(rows: dict[str, str]) -> bool:
    return all(info.startswith("Established") for info in rows.values())


def bird_routes(lab: Lab, node: str) -> set[tuple[str, str]]:
    """Kernel routes BIRD installed: (network, gateway) or (network, 'blackhole')."""
    out = set()
    for r in lab.ip_json(node, "route", "show"):
        if r.get("protocol") == "bird":
            net = str(ipaddress.ip_network(r["dst"]))
            out.add((net, "blackhole" if r.get("type") == "blackhole" else r.get("gateway", "?")))
    return out


def mesh_expected(lab: Lab, node: str) -> set[str]:
    """Mesh_ protocols a node must have: one per other host with a non-empty ip_addr_v4."""
    ips = {k.split("/")[5]: v for k, v in lab.etcd.children("/calico/bgp/v1/host").items()
           if k.endswith("/ip_addr_v4")}
    return {f"Mesh_{mesh_name(ip)}" for host, ip in ips.items() if ip and host != node}


def wait_mesh_and_routes(lab: Lab, routes: dict[str, set]) -> None:
    """The node mesh Established everywhere and every node's BIRD routes back to `routes`."""
    for node in NODES:
        want = mesh_expected(lab, node)
        settle(lambda: bgp_protocols(lab, node), f"{sorted(want)} all Established", 60,
               f"{node}: exactly the mesh sessions, Established",
               ok=lambda rows: set(rows) == want and established(rows))
    for node in NODES:
        settle(lambda: bird_routes(lab, node), routes[node], 60,
               f"{node}: the BIRD routes it had before the test")


# =========================================================================================
# 1–5  datastore after `calicoctl node --libnetwork`
# =========================================================================================

def test_inv01_ready_and_global_felix_config(lab):
    seen = {k: lab.etcd.get(f"/calico/v1/{k}") for k in
            ("Ready", "config/InterfacePrefix", "config/IpInIpEnabled")}
    # the seed's first pool is --ipip, which sets IpInIpEnabled to true (spec §1.6), where the
    # kernel can carry IPIP at all (lab/provision.py adds the pool without --ipip otherwise)
    ipip = "true" if ipip_supported() else "false"
    expected = {"Ready": "true", "config/InterfacePrefix": "cali", "config/IpInIpEnabled": ipip}
    assert seen == expected, f"/calico/v1 keys: expected {expected}, saw {seen}"


def test_inv02_global_bgp_as_and_node_mesh(lab):
    as_num = lab.etcd.get("/calico/bgp/v1/global/as_num")
    mesh = lab.etcd.json("/calico/bgp/v1/global/node_mesh")
    assert as_num == "64511", f"/calico/bgp/v1/global/as_num: expected '64511', saw {as_num!r}"
    assert mesh == {"enabled": True}, \
        f"/calico/bgp/v1/global/node_mesh: expected {{'enabled': True}}, saw {mesh!r}"


@pytest.mark.parametrize("node", NODES)
def test_inv03_host_keys(lab, node):
    ip = lab.ip(node)
    seen = {"bird_ip": lab.etcd.get(f"/calico/v1/host/{node}/bird_ip"),
            "ip_addr_v4": lab.etcd.get(f"/calico/bgp/v1/host/{node}/ip_addr_v4"),
            "ip_addr_v6": lab.etcd.get(f"/calico/bgp/v1/host/{node}/ip_addr_v6")}
    expected = {"bird_ip": ip, "ip_addr_v4": ip, "ip_addr_v6": ""}
    assert seen == expected, f"{node}: host keys expected {expected}, saw {seen}"


@pytest.mark.parametrize("node", NODES)
def test_inv04_host_felix_config(lab, node):
    base = f"/calico/v1/host/{node}/config"
    seen = {k: lab.etcd.get(f"{base}/{k}") for k in ("DefaultEndpointToHostAction", "marker")}
    expected = {"DefaultEndpointToHostAction": "RETURN", "marker": "created"}
    assert seen == expected, f"{base}: expected {expected}, saw {seen}"


def test_inv05_pools(lab):
    seen = {k.rsplit("/", 1)[1]: json.loads(v) for k, v in lab.etcd.children(POOLS).items() if v}
    assert seen, f"{POOLS}: expected at least one IPv4 pool, saw none"
    # the seed names its own pools and starts the nodes with NO_DEFAULT_POOLS=true:
    # exactly those, no 192.168.0.0/16
    expected = {}
    for p in SEED.pools:
        doc = {"cidr": p.cidr}
        if p.ipip and ipip_supported():
            doc["ipip"] = "tunl0"
        if p.nat_outgoing:
            doc["masquerade"] = True
        expected[dash(p.cidr)] = doc
    assert seen == expected, f"{POOLS}: expected {expected}, saw {seen}"


@pytest.mark.parametrize("node", NODES)
def test_inv06_node_containers_and_plugin_socket(lab, node):
    wanted = ("calico-node", "calico-libnetwork")
    seen = {c.name: c.status for c in lab.dockers[node].containers.list(all=True)
            if c.name in wanted}
    expected = {name: "running" for name in wanted}
    assert seen == expected, f"{node}: containers expected {expected}, saw {seen}"
    sock = "/run/docker/plugins/calico.sock"
    res = lab.hosts[node].run(["test", "-S", sock])
    assert res.ok, f"{node}: expected the plugin socket {sock} to exist, it does not"


# =========================================================================================
# 7–12  a network and two containers created here (pool 192.168.30.0/24: fresh blocks)
# =========================================================================================

@dataclass
class FreshWorkload:
    name: str
    node: str
    endpoint_id: str
    ip: str

    @property
    def iface(self) -> str:
        return "cali" + self.endpoint_id[:11]


@dataclass
class Fresh:
    network: str
    network_id: str
    pools_before: dict
    workloads: dict[str, FreshWorkload]       # by node


def block_of(lab: Lab, ip: str) -> tuple[str, dict]:
    """The IPAM block key and JSON whose cidr holds ip."""
    addr = ipaddress.ip_address(ip)
    for key, value in lab.etcd.children(BLOCKS).items():
        doc = json.loads(value)
        if addr in ipaddress.ip_network(doc["cidr"]):
            return key, doc
    pytest.fail(f"expected an IPAM block under {BLOCKS} holding {ip}, found none")


@pytest.fixture(scope="module")
def fresh(lab):
    name, first = f"{RUN}-net", NODES[0]
    lab.calicoctl(first, "pool", "add", FRESH_POOL)
    try:
        pools_before = lab.etcd.children(POOLS)
        ipam = docker.types.IPAMConfig(driver="calico",
                                       pool_configs=[docker.types.IPAMPool(subnet=FRESH_POOL)])
        net = lab.dockers[first].networks.create(name, driver="calico", ipam=ipam)
        for node in NODES[1:]:
            settle(lambda: name in {n.name for n in lab.dockers[node].networks.list()}, True, 30,
                   f"network {name} to reach {node} through the cluster store")
        workloads = {}
        for node in NODES:
            c = lab.dockers[node].containers.run(image.IMAGE, name=f"{RUN}-{node}", network=name,
                                                 detach=True, tty=True, stdin_open=True)
            c.reload()
            ns = c.attrs["NetworkSettings"]["Networks"][name]
            workloads[node] = FreshWorkload(c.name, node, ns["EndpointID"], ns["IPAddress"])
        yield Fresh(name, net.id, pools_before, workloads)
    finally:
        for node in NODES:
            with contextlib.suppress(docker_api.NotFound):
                lab.container(node, f"{RUN}-{node}").remove(force=True)
        with contextlib.suppress(docker_api.NotFound):
            lab.dockers[first].networks.get(name).remove()
        lab.calicoctl(first, "pool", "remove", FRESH_POOL)
        left = [k for k in lab.etcd.children("/calico") if "192.168.30." in k]
        assert left == [], f"expected no key of pool {FRESH_POOL} after its removal, saw {left}"


def test_inv07_network_profile_and_libnetwork_key(lab, fresh):
    nid = fresh.network_id
    base = f"/calico/v1/policy/profile/{nid}"
    seen = {k[len(base) + 1:]: json.loads(v) for k, v in lab.etcd.children(base).items()}
    expected = {"tags": [nid], "labels": {},
                "rules": {"inbound_rules": [{"action": "allow", "src_tag": nid}],
                          "outbound_rules": [{"action": "allow"}]}}
    assert seen == expected, f"profile {base}: expected {expected}, saw {seen}"
    stored = lab.etcd.json(f"/calico/libnetwork/v1/{nid}")
    assert stored is not None and stored.get("NetworkID") == nid, \
        f"/calico/libnetwork/v1/{nid}: expected the CreateNetwork request, saw {stored!r}"
    pools = lab.etcd.children(POOLS)
    assert pools == fresh.pools_before, \
        f"docker network create must add no pool: pools were {fresh.pools_before}, now {pools}"


@pytest.mark.parametrize("node", NODES)
def test_inv08_endpoint_json(lab, fresh, node):
    w, nid = fresh.workloads[node], fresh.network_id
    key = f"/calico/v1/host/{node}/workload/libnetwork/libnetwork/endpoint/{w.endpoint_id}"
    expected = {"state": "active", "name": w.iface, "mac": "EE:EE:EE:EE:EE:EE",
                "profile_ids": [nid], "labels": {}, "ipv4_nets": [f"{w.ip}/32"], "ipv6_nets": []}
    seen = lab.etcd.json(key)
    assert seen == expected, f"{key}: expected {expected}, saw {seen}"
    mine = sorted(k for k, v in endpoints(lab).items()
                  if k.startswith(f"/calico/v1/host/{node}/") and nid in v["profile_ids"])
    assert mine == [key], f"{node}: expected one endpoint of {fresh.network}, saw {mine}"
    pool = lab.etcd.json(f"{POOLS}/{dash(FRESH_POOL)}")
    assert pool is not None and not pool.get("disabled") and \
        ipaddress.ip_address(w.ip) in ipaddress.ip_network(pool["cidr"]), \
        f"expected {w.ip} inside the enabled pool {FRESH_POOL}, pool is {pool!r}"


@pytest.mark.parametrize("node", NODES)
def test_inv09_block_affinity_and_first_address(lab, fresh, node):
    w = fresh.workloads[node]
    key, block = block_of(lab, w.ip)
    net = ipaddress.ip_network(block["cidr"])
    assert net.prefixlen == 26, f"{key}: expected a /26 block, saw {block['cidr']}"
    assert block["affinity"] == f"host:{node}", \
        f"{key}: expected affinity host:{node}, saw {block['affinity']!r}"
    used = [i for i, a in enumerate(block["allocations"]) if a is not None]
    ordinal = int(ipaddress.ip_address(w.ip)) - int(net.network_address)
    assert used == [ordinal], f"{key}: expected only ordinal {ordinal} ({w.ip}) allocated, saw {used}"
    host_key = f"/calico/ipam/v2/host/{node}/ipv4/block/{dash(net)}"
    assert lab.etcd.get(host_key) == "", f"expected affinity key {host_key} = '', it is missing"
    assert w.ip == str(net.network_address), \
        f"{node}: the first address of fresh block {net} should be {net.network_address}, got {w.ip}"


def _container_view(lab: Lab, w: FreshWorkload) -> dict:
    rc_a, addrs = lab.exec(w.node, w.name, "ip", "-o", "-4", "addr", "show")
    rc_l, links = lab.exec(w.node, w.name, "ip", "-o", "link", "show")
    rc_r, routes = lab.exec(w.node, w.name, "ip", "route", "show")
    assert rc_a == rc_l == rc_r == 0, \
        f"{w.name}: expected busybox ip to succeed, saw: {addrs}{links}{routes}"
    macs = {}
    for line in links.splitlines():
        m = re.match(r"\d+: ([^:@]+)[@:].*link/\S+ (\S+)", line)
        if m and m.group(1) != "lo":
            macs[m.group(1)] = m.group(2)
    return {"links": macs,
            "addrs": sorted(f"{f[1]} {f[3]}" for f in (l.split() for l in addrs.splitlines())
                            if f[1] != "lo"),
            "routes": sorted(" ".join(line.split()) for line in routes.splitlines() if line.strip())}


@pytest.mark.parametrize("node", NODES)
def test_inv10_container_view(lab, fresh, node):
    w = fresh.workloads[node]
    seen = _container_view(lab, w)
    expected = {"links": {"cali0": MAC}, "addrs": [f"cali0 {w.ip}/32"],
                "routes": sorted([f"default via {GATEWAY} dev cali0",
                                  f"{GATEWAY} dev cali0 scope link"])}
    assert seen == expected, f"{w.name}: container view expected {expected}, saw {seen}"
    sdk_mac = lab.container(node, w.name).attrs["NetworkSettings"]["Networks"][fresh.network]["MacAddress"]
    assert sdk_mac == MAC, f"{w.name}: docker inspect MacAddress expected {MAC}, saw {sdk_mac}"


def _host_side(lab: Lab, w: FreshWorkload) -> dict:
    routes = [r for r in lab.ip_json(w.node, "route", "show") if r.get("dst") == w.ip]
    neigh = lab.ip_json(w.node, "neigh", "show", "dev", w.iface)

    def sysctl(path):
        res = lab.hosts[w.node].run(["cat", f"/proc/sys/net/ipv4/conf/{w.iface}/{path}"])
        return res.stdout.strip() if res.ok else None
    return {"routes": [(r.get("dev"), r.get("scope"), r.get("gateway")) for r in routes],
            "proxy_arp": sysctl("proxy_arp"), "rp_filter": sysctl("rp_filter"),
            "neigh": [(n.get("dst"), n.get("lladdr"), n.get("state")) for n in neigh]}


def ipset_members(lab: Lab, node: str, name: str) -> set[str] | None:
    res = lab.hosts[node].run(["ipset", "list", name])
    if not res.ok:
        return None
    return set(res.stdout.split("Members:", 1)[1].split()) if "Members:" in res.stdout else set()


@pytest.mark.parametrize("node", NODES)
def test_inv11_host_side_routes_sysctls_chains_ipset(lab, fresh, node):
    w, nid = fresh.workloads[node], fresh.network_id
    expected = {"routes": [(w.iface, "link", None)], "proxy_arp": "1", "rp_filter": "1",
                "neigh": [(w.ip, MAC, ["PERMANENT"])]}
    settle(lambda: _host_side(lab, w), expected, 20,
           f"{node}: Felix's route, sysctls and ARP entry for {w.iface}")

    suffix, profile = w.endpoint_id[:11], felix_short(nid)
    chains = {f"felix-to-{suffix}", f"felix-from-{suffix}",
              f"felix-p-{profile}-i", f"felix-p-{profile}-o"}
    settle(lambda: chains - set(re.findall(r"^:(\S+)", lab.sh(node, "iptables-save", "-t", "filter"),
                                           re.M)), set(), 20,
           f"{node}: iptables chains {sorted(chains)} (missing ones shown)")

    # the tag ipset holds every endpoint of the network, on every host
    tagged = {p.rsplit("/", 2)[1] for p, v in lab.etcd.children("/calico/v1/policy/profile").items()
              if p.endswith("/tags") and nid in json.loads(v)}
    members = {net.split("/")[0] for ep in endpoints(lab).values()
               if tagged & set(ep["profile_ids"]) for net in ep["ipv4_nets"]}
    assert members == {x.ip for x in fresh.workloads.values()}, \
        f"etcd: expected the endpoints of {fresh.network} on all hosts, saw {members}"
    ipset = f"felix-v4-{felix_short(nid)}"
    settle(lambda: ipset_members(lab, node, ipset), members, 20, f"{node}: ipset {ipset} members")


@pytest.mark.parametrize("owner", NODES)
def test_inv12_block_blackhole_on_owner_and_route_on_peers(lab, fresh, owner):
    w = fresh.workloads[owner]
    _, block = block_of(lab, w.ip)
    blk = block["cidr"]
    settle(lambda: {r for r in bird_routes(lab, owner) if r[0] == blk}, {(blk, "blackhole")}, 20,
           f"{owner}: `blackhole {blk} proto bird` for its own block")
    for peer in NODES:
        if peer == owner:
            continue
        want = [{"dst": blk, "gateway": lab.ip(owner), "dev": "eth0", "protocol": "bird"}]
        settle(lambda: [{k: r.get(k) for k in ("dst", "gateway", "dev", "protocol")}
                        for r in lab.ip_json(peer, "route", "show") if r.get("dst") == blk],
               want, 20, f"{peer}: the route to {owner}'s block {blk}")


# =========================================================================================
# 14, 16, 18  traffic between the seed's workloads (nothing changed)
# =========================================================================================

def test_inv14_same_network_workloads_reach_each_other_across_hosts(lab):
    w1, w2 = workload_ip(lab, "web_container_1"), workload_ip(lab, "web_container_2")
    assert workload_node("web_container_1") != workload_node("web_container_2"), \
        "expected the seed's two web workloads on different hosts, they share one"
    for src, dst in (("web_container_1", w2), ("web_container_2", w1)):
        settle(lambda: ping(lab, src, dst), True, 10, f"ping {src} → {dst} (both on network web)")


def test_inv14_other_network_cannot_initiate(lab):
    web2 = workload_ip(lab, "web_container_2")
    assert not ping(lab, "mysqldb_container_1", web2), \
        f"mysqldb_container_1 → web_container_2 ({web2}) ping: expected dropped (web's inbound " \
        "rules allow only tag web and tcp 80,443), but it got a reply"
    with listening(lab, "web_container_2", 8080):
        control = tcp(lab, "web_container_1", web2, 8080)
        assert control == "x", f"control: web_container_1 → {web2}:8080 expected 'x', saw {control!r}"
        seen = tcp(lab, "mysqldb_container_1", web2, 8080)
        assert seen.startswith("no connection"), \
            f"mysqldb_container_1 → web_container_2:8080 expected dropped, but it read {seen!r}"


def test_inv14_replies_of_allowed_flows_pass(lab):
    """app carries tag db-users, so app → mysqldb:3306 is allowed; mysqldb may not initiate to
    app, so the reply that comes back proves conntrack lets replies through."""
    mysql, app = workload_ip(lab, "mysqldb_container_1"), workload_ip(lab, "app_container_1")
    with listening(lab, "mysqldb_container_1", 3306), listening(lab, "app_container_1", 3306):
        back = tcp(lab, "mysqldb_container_1", app, 3306)
        assert back.startswith("no connection"), \
            f"mysqldb_container_1 → app_container_1:3306 expected dropped, but it read {back!r}"
        reply = tcp(lab, "app_container_1", mysql, 3306)
        assert reply == "x", \
            f"app_container_1 → mysqldb_container_1:3306 expected the reply 'x', saw {reply!r}"


@pytest.mark.parametrize("node", NODES)
def test_inv16_workload_reaches_its_own_host(lab, node):
    name = next(w.name for w in SEED.workloads if w.node == node and w.network == "web")
    settle(lambda: ping(lab, name, lab.ip(node)), True, 10,
           f"ping {name} → its own host {node} ({lab.ip(node)}) (DefaultEndpointToHostAction RETURN)")


SEND_SCRIPT = r"""
import json, sys
from scapy.all import IP, TCP, UDP, Ether, sendp
gw_mac = sys.argv[1]
for p in json.loads(sys.argv[2]):
    l4 = (TCP(sport=p["sport"], dport=p["dport"], flags="S") if p["proto"] == "tcp"
          else UDP(sport=p["sport"], dport=p["dport"]) / b"probe")
    sendp(Ether(src=p["mac"], dst=gw_mac) / IP(src=p["src"], dst=p["dst"]) / l4,
          iface="cali0", verbose=False)
"""


def send_raw(lab: Lab, name: str, packets: list[dict]) -> None:
    """Send crafted frames, in order, out of workload `name`'s cali0 with scapy run inside its
    network namespace. Each packet: mac, src, dst, proto (tcp SYN | udp), sport, dport."""
    node = workload_node(name)
    c = lab.container(node, name)
    endpoint = next(iter(c.attrs["NetworkSettings"]["Networks"].values()))["EndpointID"]
    gw_mac = lab.ip_json(node, "link", "show", "dev", "cali" + endpoint[:11])[0]["address"]
    argv = [sys.executable, "-c", SEND_SCRIPT, gw_mac, json.dumps(packets)]
    sent = subprocess.run(netns.nsenter(argv, net=f"/proc/{c.attrs['State']['Pid']}/ns/net"),
                          capture_output=True, text=True, timeout=60)
    assert sent.returncode == 0, f"expected scapy to send {packets} from {name}: {sent.stderr}"


class Capture:
    """tcpdump on cali0 inside a workload's network namespace, lines collected by a thread."""

    def __init__(self, pid: int, bpf: str) -> None:
        self.proc = subprocess.Popen(
            netns.nsenter(["tcpdump", "-l", "-n", "-i", "cali0", bpf], net=f"/proc/{pid}/ns/net"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        said = []
        for line in iter(self.proc.stderr.readline, ""):
            said.append(line)
            if "listening on" in line:
                break
        else:
            pytest.fail(f"expected tcpdump to start listening, it said {''.join(said)!r}")
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in iter(self.proc.stdout.readline, ""):
            self.lines.append(line)

    def stop(self) -> list[str]:
        self.proc.terminate()
        self.proc.wait(10)
        self.reader.join(5)
        return list(self.lines)


def test_inv18_spoofed_source_mac_and_ip_are_dropped(lab):
    """Three TCP SYNs to web_container_2:80 (open to any source by web's rules, so only the
    anti-spoofing can stop them) sent from web_container_1's cali0: wrong source MAC, a source
    IP that belongs to another workload of the same host, then the honest control packet."""
    src_node, dst_node = workload_node("web_container_1"), workload_node("web_container_2")
    dst = lab.container(dst_node, "web_container_2")
    src_ip, dst_ip = workload_ip(lab, "web_container_1"), workload_ip(lab, "web_container_2")
    other_ip = workload_ip(lab, "mysqldb_container_1")
    assert workload_node("mysqldb_container_1") == src_node, \
        f"expected mysqldb_container_1 on {src_node} (a same-host address to spoof), it is not"
    packets = {"spoofed source MAC": ("02:00:00:00:00:01", src_ip, 40001),
               "spoofed source IP": (MAC, other_ip, 40002),
               "control": (MAC, src_ip, 40003)}

    cap = Capture(dst.attrs["State"]["Pid"], "tcp dst port 80")
    try:
        send_raw(lab, "web_container_1", [
            {"mac": mac, "src": ip, "dst": dst_ip, "proto": "tcp", "sport": sport, "dport": 80}
            for mac, ip, sport in packets.values()])
        mac, ip, sport = packets["control"]
        settle(lambda: any(f"{ip}.{sport} > {dst_ip}.80" in line for line in cap.lines), True, 10,
               f"the control SYN {ip}:{sport} → {dst_ip}:80 to reach web_container_2")
    finally:
        lines = cap.stop()
    for what, (mac, ip, sport) in packets.items():
        if what != "control":
            arrived = [line for line in lines if f".{sport} > " in line]
            assert arrived == [], (f"{what} ({mac}, {ip}) → {dst_ip}:80: expected dropped on "
                                   f"{src_node}, but web_container_2 received: {arrived}")


# =========================================================================================
# 19, 21  BGP as it stands
# =========================================================================================

@pytest.mark.parametrize("node", NODES)
def test_inv19_mesh_sessions_established(lab, node):
    want = mesh_expected(lab, node)
    rows = settle(lambda: bgp_protocols(lab, node), f"{sorted(want)} all Established", 30,
                  f"{node}: one Mesh_ protocol per other host, Established",
                  ok=lambda rows: set(rows) == want and established(rows))
    assert want, f"{node}: expected at least one other host in the mesh, saw {rows}"
    default_as = lab.etcd.get("/calico/bgp/v1/global/as_num")
    for name in rows:
        peer_ip = name[len("Mesh_"):].replace("_", ".")
        host = next(k.split("/")[5] for k, v in lab.etcd.children("/calico/bgp/v1/host").items()
                    if k.endswith("/ip_addr_v4") and v == peer_ip)
        as_num = lab.etcd.get(f"/calico/bgp/v1/host/{host}/as_num") or default_as
        detail = lab.sh(node, "birdc", "-s", BIRD_CTL, "show", "protocols", "all", name)
        m = re.search(r"Neighbor AS:\s+(\d+)", detail)
        assert m and m.group(1) == as_num, \
            f"{node}: {name} expected neighbor AS {as_num}, saw {m.group(1) if m else detail!r}"
    status = lab.calicoctl(node, "status")
    table = {cells[0]: cells[1:] for cells in
             ([c.strip() for c in line.strip("|").split("|")] for line in status.splitlines()
              if line.startswith("|") and "Peer address" not in line)}
    expected = {name[len("Mesh_"):].replace("_", "."): "node-to-node mesh" for name in want}
    assert {ip: row[0] for ip, row in table.items()} == expected, \
        f"{node}: calicoctl status peers expected {expected}, saw {table}"
    assert all(row[3] == "Established" for row in table.values()), \
        f"{node}: calicoctl status expected every peer Established, saw {table}"


@pytest.mark.parametrize("node", NODES)
def test_inv21_only_pool_prefixes_advertised(lab, node):
    """Per other host: one /26 per block affine to it, plus /32s of its workloads in blocks not
    affine to it; nothing else (no host or docker0 routes). Own affine blocks are blackholes."""
    affine = {h: {k.rsplit("/", 1)[1].replace("-", "/")
                  for k in lab.etcd.children(f"/calico/ipam/v2/host/{h}/ipv4/block")
                  if k.rsplit("/", 1)[1] != "block"} for h in NODES}
    expected = {(blk, "blackhole") for blk in affine[node]}
    singles = []
    for other in NODES:
        if other == node:
            continue
        expected |= {(blk, lab.ip(other)) for blk in affine[other]}
        for key, ep in endpoints(lab).items():
            if not key.startswith(f"/calico/v1/host/{other}/"):
                continue
            for net in ep["ipv4_nets"]:
                ip = ipaddress.ip_address(net.split("/")[0])
                if not any(ip in ipaddress.ip_network(b) for b in affine[other]):
                    singles.append(f"{ip}/32")
                    expected.add((f"{ip}/32", lab.ip(other)))
    settle(lambda: bird_routes(lab, node), expected, 30,
           f"{node}: BIRD routes = affine blocks of the other hosts + their workloads' /32s in "
           f"foreign blocks ({singles}) + its own blocks as blackholes")
    # the seed puts web_container_1 and web_container_2 on different hosts in one /26, so one
    # of the hosts must advertise a /32: make sure that case is really exercised
    foreign = [ep["ipv4_nets"] for key, ep in endpoints(lab).items()
               if not any(ipaddress.ip_address(n.split("/")[0]) in ipaddress.ip_network(b)
                          for n in ep["ipv4_nets"] for b in affine[key.split("/")[4]])]
    assert foreign, "expected at least one workload outside its host's blocks in the seed, saw none"


# =========================================================================================
# 13  stop / rm / network rm (ends the fresh network of 7–12)
# =========================================================================================

def test_inv13_stop_rm_and_network_rm_clean_up(lab, fresh):
    node = NODES[-1]
    w = fresh.workloads[node]
    ep_key = f"/calico/v1/host/{node}/workload/libnetwork/libnetwork/endpoint/{w.endpoint_id}"
    block_key, block = block_of(lab, w.ip)
    net = ipaddress.ip_network(block["cidr"])
    ordinal = int(ipaddress.ip_address(w.ip)) - int(net.network_address)
    assert lab.etcd.exists(ep_key), f"expected {ep_key} before the stop"

    container = lab.container(node, w.name)
    container.stop(timeout=1)
    settle(lambda: lab.etcd.exists(ep_key), False, 20, f"docker stop: endpoint key {ep_key} deleted")
    settle(lambda: lab.hosts[node].run(["ip", "link", "show", "dev", w.iface]).ok, False, 20,
           f"docker stop: host veth {w.iface} gone from {node}")
    block = settle(lambda: lab.etcd.json(block_key), "ordinal released", 20,
                   f"docker stop: {w.ip} (ordinal {ordinal}) released in {block_key}",
                   ok=lambda b: b["allocations"][ordinal] is None and ordinal in b["unallocated"])
    assert block["affinity"] == f"host:{node}", \
        f"{block_key}: expected the block to keep affinity host:{node}, saw {block['affinity']!r}"
    host_key = f"/calico/ipam/v2/host/{node}/ipv4/block/{dash(net)}"
    assert lab.etcd.get(host_key) == "", f"expected {host_key} kept after the release, it is gone"
    container.remove()

    for other in NODES[:-1]:
        lab.container(other, fresh.workloads[other].name).remove(force=True)
    lab.dockers[NODES[0]].networks.get(fresh.network).remove()
    profile = f"/calico/v1/policy/profile/{fresh.network_id}"
    libnet = f"/calico/libnetwork/v1/{fresh.network_id}"
    settle(lambda: (lab.etcd.exists(profile), lab.etcd.exists(libnet)), (False, False), 20,
           f"docker network rm: ({profile} exists, {libnet} exists)")


# =========================================================================================
# 15, 17, 16 (DNS/DHCP)  policy changes (restored)
# =========================================================================================

def test_inv15_rule_add_stores_network_id_and_shows_the_name(lab):
    first = NODES[0]
    web_id, app_id = lab.network_id("web"), lab.network_id("app")
    key = f"/calico/v1/policy/profile/{web_id}/rules"
    before = lab.etcd.get(key)
    position = len(json.loads(before)["inbound_rules"]) + 1
    try:
        lab.calicoctl(first, "profile", "web", "rule", "add", "inbound",
                      *"allow tcp from tag app to ports 3306".split())
        rules = lab.etcd.json(key)["inbound_rules"]
        expected = {"action": "allow", "protocol": "tcp", "src_tag": app_id, "dst_ports": [3306]}
        assert len(rules) == position and rules[-1] == expected, \
            f"{key}: expected inbound rule {position} = {expected}, saw {rules}"
        shown = lab.calicoctl(first, "profile", "web", "rule", "show").splitlines()
        line = f"   {position} allow tcp from tag app to ports 3306"
        assert line in shown, f"calicoctl profile web rule show: expected {line!r}, saw {shown}"
    finally:
        if len(lab.etcd.json(key)["inbound_rules"]) == position:
            lab.calicoctl(first, "profile", "web", "rule", "remove", "inbound", f"--at={position}")
        after = lab.etcd.get(key)
        assert json.loads(after) == json.loads(before), \
            f"{key}: expected restored to {before}, saw {after}"


@contextlib.contextmanager
def profiles_emptied(lab: Lab, name: str):
    """Workload `name`'s endpoint with `profile_ids: []` in etcd; the exact JSON put back after,
    and waited for (the workload pings its own host again)."""
    node, ip = workload_node(name), workload_ip(lab, name)
    key = next(k for k, ep in endpoints(lab).items() if ep["ipv4_nets"] == [f"{ip}/32"])
    original = lab.etcd.get(key)
    doc = json.loads(original)
    doc["profile_ids"] = []
    lab.etcd.write(key, json.dumps(doc))
    try:
        yield key
    finally:
        lab.etcd.write(key, original)
        settle(lambda: ping(lab, name, lab.ip(node)), True, 20,
               f"after restoring {key}: ping {name} → its host {lab.ip(node)}")


def test_inv17_endpoint_without_profiles_drops_new_flows_both_ways(lab):
    a, b = "web_container_1", "web_container_2"
    a_ip, b_ip = workload_ip(lab, a), workload_ip(lab, b)
    for src, dst in ((a, b_ip), (b, a_ip)):
        settle(lambda: ping(lab, src, dst), True, 10, f"before: ping {src} → {dst}")
    with profiles_emptied(lab, b) as key:
        settle(lambda: ping(lab, a, b_ip), False, 20,
               f"inbound to {b} ({key} profile_ids []): ping {a} → {b_ip} dropped")
        assert not ping(lab, b, a_ip), \
            f"outbound from {b} (profile_ids []): ping {b} → {a_ip} expected dropped, got a reply"
    for src, dst in ((a, b_ip), (b, a_ip)):
        settle(lambda: ping(lab, src, dst), True, 20, f"after the restore: ping {src} → {dst}")


UDP_LISTENER = r"""
import select, socket, sys
socks = []
for port in map(int, sys.argv[1:]):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    socks.append(s)
print("ready", flush=True)
while True:
    for s in select.select(socks, [], [])[0]:
        data, addr = s.recvfrom(2048)
        print(s.getsockname()[1], addr[0], addr[1], flush=True)
"""


@contextlib.contextmanager
def udp_listener(lab: Lab, node: str, ports: list[int]):
    """A UDP listener on the node itself; yields the list of (port, source ip) heard so far."""
    proc = subprocess.Popen(lab.hosts[node].argv([sys.executable, "-c", UDP_LISTENER,
                                                  *map(str, ports)]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    heard: list[tuple[int, str]] = []
    try:
        first = proc.stdout.readline()
        assert first.strip() == "ready", \
            f"{node}: expected the UDP listener ready on {ports}, it said {first!r} {proc.stderr.read()!r}"

        def read():
            for line in iter(proc.stdout.readline, ""):
                port, src, _ = line.split()
                heard.append((int(port), src))
        threading.Thread(target=read, daemon=True).start()
        yield heard
    finally:
        proc.terminate()
        proc.wait(10)


def test_inv16_dns_and_dhcp_to_host_pass_even_without_profiles(lab):
    """DHCP (udp 68→67) and DNS (udp 53) to the host are accepted before the endpoint's
    outbound policy: they arrive from a workload whose profile_ids are empty, while other UDP
    to the host (sent first) and ping to the host are dropped."""
    name = "web_container_2"
    node = workload_node(name)
    host_ip, ip = lab.ip(node), workload_ip(lab, name)
    with udp_listener(lab, node, [53, 67, 5300]) as heard, profiles_emptied(lab, name):
        settle(lambda: ping(lab, name, host_ip), False, 20,
               f"ping {name} → its host {host_ip} dropped once profile_ids are []")
        send_raw(lab, name, [
            {"mac": MAC, "src": ip, "dst": host_ip, "proto": "udp", "sport": 40000, "dport": 5300},
            {"mac": MAC, "src": ip, "dst": host_ip, "proto": "udp", "sport": 40053, "dport": 53},
            {"mac": MAC, "src": ip, "dst": host_ip, "proto": "udp", "sport": 68, "dport": 67}])
        settle(lambda: sorted(set(heard)), [(53, ip), (67, ip)], 10,
               f"{node}: DNS and DHCP from {name} (profile_ids []) heard on {host_ip}",
               ok=lambda seen: {(53, ip), (67, ip)} <= set(seen))
        assert (5300, ip) not in heard, \
            f"{node}: udp 5300 from {name} (profile_ids []) expected dropped, but it arrived: {heard}"


# =========================================================================================
# 20, 22  BGP changes (restored)
# =========================================================================================

def test_inv20_mesh_off_and_global_and_node_peers(lab):
    first = NODES[0]
    g_peer, n_peer = "192.168.20.250", "192.168.20.251"   # nobody there: only the protocols count
    used = {n.ip for n in lab.topo.nodes} | {lab.topo.management.ip}
    assert not {g_peer, n_peer} & used, f"expected {g_peer}, {n_peer} unused in the lab ({used})"
    before = {n: bird_routes(lab, n) for n in NODES}
    try:
        lab.calicoctl(first, "bgp", "node-mesh", "off")
        mesh = lab.etcd.json("/calico/bgp/v1/global/node_mesh")
        assert mesh == {"enabled": False}, f"node_mesh: expected {{'enabled': False}}, saw {mesh}"
        for node in NODES:
            settle(lambda: bgp_protocols(lab, node), {}, 30, f"{node}: no BGP protocol with the mesh off")
            settle(lambda: {r for r in bird_routes(lab, node) if r[1] != "blackhole"}, set(), 30,
                   f"{node}: routes learned from other hosts withdrawn with the mesh off")

        lab.calicoctl(first, "bgp", "peer", "add", g_peer, "as", AS_NUM)
        stored = lab.etcd.json(f"/calico/bgp/v1/global/peer_v4/{g_peer}")
        assert stored == {"ip": g_peer, "as_num": AS_NUM}, \
            f"global peer_v4/{g_peer}: expected {{'ip': {g_peer!r}, 'as_num': {AS_NUM!r}}}, saw {stored}"
        for node in NODES:
            settle(lambda: set(bgp_protocols(lab, node)), {f"Global_{mesh_name(g_peer)}"}, 30,
                   f"{node}: BGP protocols after `bgp peer add {g_peer}`")

        lab.calicoctl(first, "node", "bgp", "peer", "add", n_peer, "as", AS_NUM)
        stored = lab.etcd.json(f"/calico/bgp/v1/host/{first}/peer_v4/{n_peer}")
        assert stored == {"ip": n_peer, "as_num": AS_NUM}, \
            f"{first} peer_v4/{n_peer}: expected {{'ip': {n_peer!r}, 'as_num': {AS_NUM!r}}}, saw {stored}"
        for node in NODES:
            want = {f"Global_{mesh_name(g_peer)}"} | ({f"Node_{mesh_name(n_peer)}"}
                                                       if node == first else set())
            settle(lambda: set(bgp_protocols(lab, node)), want, 30,
                   f"{node}: BGP protocols after `node bgp peer add {n_peer}` on {first}")
    finally:
        lab.hosts[first].run(["calicoctl", "node", "bgp", "peer", "remove", n_peer], timeout=60)
        lab.hosts[first].run(["calicoctl", "bgp", "peer", "remove", g_peer], timeout=60)
        lab.calicoctl(first, "bgp", "node-mesh", "on")
        wait_mesh_and_routes(lab, before)


class RouteReflector:
    """`python -m lab.calico.bird routereflector` (calico/routereflector's confd + BIRD) run in
    the lab's management namespace with IP = the management host's address."""

    def __init__(self, lab: Lab, workdir) -> None:
        self.ip = lab.topo.management.ip
        self.ctl = str(workdir / "bird.ctl")
        self.log = open(workdir / "rr.log", "w+")
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "PYTHONPATH": str(ROOT), "IP": self.ip,
               "ETCD_AUTHORITY": lab.topo.etcd_authority,
               "BIRD_CONF": str(workdir / "bird.cfg"), "BIRD_CTL": self.ctl}
        self.proc = subprocess.Popen(
            netns.nsenter([sys.executable, "-m", "lab.calico.bird", "routereflector"],
                          net=lab.st.mgmt_netns_file),
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)

    def protocols(self) -> dict[str, str]:
        """Its BGP protocols, through its control socket (a unix socket: no namespace needed)."""
        if self.proc.poll() is not None:
            return {"(route reflector exited)": self.output()}
        res = run(["birdc", "-s", self.ctl, "show", "protocols"], timeout=10, check=False)
        if not res.ok:      # BIRD not started yet: say so, keep polling
            return {"(birdc)": (res.stdout + res.stderr).strip()}
        return parse_bgp(res.stdout)

    def stop(self) -> None:
        """SIGTERM to the confd we started (it stops its BIRD), SIGKILL to our group if stuck."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-2000:]


def test_inv22_route_reflector_replaces_the_mesh(lab, tmp_path):
    """A reflector (with an rr_v4 key) that the nodes peer with, first as a global peer, then as
    a node-specific peer of every node, gives back every cross-host route with the mesh off;
    it also meshes with every other rr_v4 entry (a second, absent reflector: the protocol
    exists, nobody answers)."""
    first = NODES[0]
    rr_dir = "/calico/bgp/v1/rr_v4"
    had_rr_dir = lab.etcd.exists(rr_dir)
    other_rr = "192.168.20.253"
    before = {n: bird_routes(lab, n) for n in NODES}
    web1, web2 = workload_ip(lab, "web_container_1"), workload_ip(lab, "web_container_2")
    rr = RouteReflector(lab, tmp_path)
    try:
        lab.etcd.write(f"{rr_dir}/{rr.ip}", json.dumps({"ip": rr.ip, "cluster_id": "1.0.0.1"}))
        lab.etcd.write(f"{rr_dir}/{other_rr}", json.dumps({"ip": other_rr, "cluster_id": "1.0.0.1"}))
        lab.calicoctl(first, "bgp", "node-mesh", "off")
        for node in NODES:
            settle(lambda: bgp_protocols(lab, node), {}, 30, f"{node}: no BGP protocol with the mesh off")

        clients = {mesh_name(lab.ip(n)) for n in NODES}
        for kind in ("Global", "Node"):
            if kind == "Global":
                lab.calicoctl(first, "bgp", "peer", "add", rr.ip, "as", AS_NUM)
            else:
                lab.calicoctl(first, "bgp", "peer", "remove", rr.ip)
                for node in NODES:
                    lab.calicoctl(node, "node", "bgp", "peer", "add", rr.ip, "as", AS_NUM)
            want_rr = {f"{kind}_{c}" for c in clients} | {f"Mesh_{mesh_name(other_rr)}"}
            settle(rr.protocols, f"{sorted(want_rr)}, clients Established", 60,
                   f"route reflector ({kind.lower()} peer): its BGP protocols",
                   ok=lambda rows: set(rows) == want_rr and
                   established({k: v for k, v in rows.items() if not k.startswith("Mesh_")}))
            for node in NODES:
                want = {f"{kind}_{mesh_name(rr.ip)}"}
                settle(lambda: bgp_protocols(lab, node), f"{sorted(want)} Established", 60,
                       f"{node}: its session to the reflector as a {kind.lower()} peer",
                       ok=lambda rows: set(rows) == want and established(rows))
                settle(lambda: bird_routes(lab, node), before[node], 60,
                       f"{node}: every cross-host route, reflected ({kind.lower()} peer)")
            for src, dst in (("web_container_1", web2), ("web_container_2", web1)):
                settle(lambda: ping(lab, src, dst), True, 10,
                       f"ping {src} → {dst} across hosts through the reflector ({kind.lower()} peer)")
    finally:
        for node in NODES:
            lab.hosts[node].run(["calicoctl", "node", "bgp", "peer", "remove", rr.ip], timeout=60)
        lab.hosts[first].run(["calicoctl", "bgp", "peer", "remove", rr.ip], timeout=60)
        lab.calicoctl(first, "bgp", "node-mesh", "on")
        if had_rr_dir:
            for key in (f"{rr_dir}/{rr.ip}", f"{rr_dir}/{other_rr}"):
                with contextlib.suppress(etcd.EtcdKeyNotFound):
                    lab.etcd.delete(key)
        else:
            with contextlib.suppress(etcd.EtcdKeyNotFound):
                lab.etcd.delete(rr_dir, recursive=True)
        rr.stop()
        wait_mesh_and_routes(lab, before)
