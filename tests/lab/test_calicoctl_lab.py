"""calicoctl 0.22's endpoint, container, checksystem, diags, config and version (issue 18), run
in the seed lab's node shells as an engineer would, and checked against what the lab really
holds: the endpoint keys in etcd (read with curl inside node1), the endpoints Docker says the
libnetwork plugin made (`docker inspect` on each node), the container's own interfaces and
routes, and traffic between workloads.

One seed lab for the module (`python -m lab up` / `down`). Names this module creates start
with `ctl`; every test puts back what it changed, and the last one checks that etcd's /calico
tree is as the module found it.
"""
from __future__ import annotations

import json
import re
import shlex
import time

import pytest

from lab import state
from lab.provision import ipip_supported
from lab.transport import lab_hosts
from tests.helpers import lab_cli

pytestmark = pytest.mark.lab

ETCD = "http://192.168.20.1:2379"          # the seed's etcd, reached from inside node1
NODES = ("node1", "node2")
IMAGE = "calico-net-test:1.0"
POOL = "192.168.22.0/24"                    # web's pool
# Addresses in the /26 that web_container_1 and _2 (.1, .2) already use: whichever node owns
# it, assigning there claims no new block, so IPAM is left as found once they are released.
# (`docker run --net web` without --ip would auto-assign from node1's own block, and node1 has
# none in web's pool when node2's web_container_2 claimed the /26 first: the build's race.)
OWN_POOL = "192.168.31.0/26"                # inside 192.168.0.0/16, unused by the seed
ADDRESS, EXTRA, BRIDGED = "192.168.22.50", "192.168.22.60", "192.168.22.51"
RUN_IP, PROFILE_IP = "192.168.22.40", "192.168.22.41"   # docker run --ip, the libnetwork way


@pytest.fixture(scope="module")
def hosts():
    up = lab_cli("up", timeout=300)
    assert up.returncode == 0, f"expected `python -m lab up` to succeed:\n{up.stdout}{up.stderr}"
    try:
        yield lab_hosts(state.load().topology)
    finally:
        down = lab_cli("down", timeout=300)
        assert down.returncode == 0, f"expected `python -m lab down` to succeed:\n{down.stderr}"


@pytest.fixture(scope="module")
def found_tree(hosts):
    """/calico as the module found it: the last test checks it is left so."""
    return calico_tree(hosts)


def sh(hosts, node: str, line: str, ok: bool | None = True, timeout: float = 90):
    """One command line in the node's root shell: (exit code, stdout, stderr); with ok=True
    (the default) it must succeed, with ok=False it must fail."""
    res = hosts[node].run(["bash", "-c", line], timeout=timeout)
    if ok is True:
        assert res.rc == 0, f"{node}# {line}\nexit {res.rc}:\n{res.stdout}{res.stderr}"
    elif ok is False:
        assert res.rc != 0, f"{node}# {line}\nexpected a failure, got exit 0:\n{res.stdout}"
    return res.rc, res.stdout, res.stderr


def out(hosts, node: str, line: str) -> str:
    return sh(hosts, node, line)[1]


def words(text: str) -> str:
    """A message without 0.22's 80-column wrapping (64-hex profile IDs wrap)."""
    return " ".join(text.split())


def settle(observe, ok, timeout: float, what: str):
    deadline, seen = time.monotonic() + timeout, None
    while True:
        seen = observe()
        if ok(seen):
            return seen
        if time.monotonic() > deadline:
            pytest.fail(f"expected {what} within {timeout}s; last saw: {seen!r}")
        time.sleep(0.3)


# -- what the lab really holds ----------------------------------------------------------------

def calico_tree(hosts) -> dict[str, str]:
    """Every leaf of etcd's /calico (key -> value), read with curl inside node1."""
    doc = json.loads(out(hosts, "node1", f"curl -sf '{ETCD}/v2/keys/calico?recursive=true'"))
    leaves: dict[str, str] = {}

    def walk(node):
        if node.get("dir"):
            for child in node.get("nodes", []):
                walk(child)
        else:
            leaves[node["key"]] = node.get("value")
    walk(doc["node"])
    return leaves


def etcd_endpoints(hosts) -> dict[str, set[str]]:
    """host -> endpoint IDs stored under /calico/v1/host/<host>/workload/…/endpoint/<id>."""
    found: dict[str, set[str]] = {n: set() for n in NODES}
    for key in calico_tree(hosts):
        m = re.match(r"^/calico/v1/host/([^/]+)/workload/[^/]+/[^/]+/endpoint/([^/]+)$", key)
        if m:
            found.setdefault(m.group(1), set()).add(m.group(2))
    return found


def docker_endpoints(hosts, node: str) -> set[str]:
    """The EndpointIDs of this node's containers on calico networks: the endpoints the
    libnetwork plugin made here."""
    ids = out(hosts, node, "docker ps -q").split()
    if not ids:
        return set()
    inspected = json.loads(out(hosts, node, "docker inspect " + " ".join(ids)))
    nets = json.loads(out(hosts, node, "docker network inspect $(docker network ls -q)"))
    calico = {n["Name"] for n in nets if n.get("Driver") == "calico"}
    return {net["EndpointID"] for c in inspected
            for name, net in (c["NetworkSettings"]["Networks"] or {}).items()
            if name in calico and net.get("EndpointID")}


def parse_table(text: str) -> list[list[str]]:
    """The body rows of a calicoctl table (first-line cells only), stripped."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[1:]]


def summary(hosts, node: str = "node1", flags: str = "") -> dict[tuple[str, str], tuple[int, int]]:
    """`calicoctl endpoint show`: (host, orchestrator) -> (workloads, endpoints)."""
    rows = parse_table(out(hosts, node, f"calicoctl endpoint show {flags}"))
    return {(r[0], r[1]): (int(r[2]), int(r[3])) for r in rows}


def detailed_ids(hosts, node: str, flags: str = "") -> set[str]:
    rows = parse_table(out(hosts, node, f"calicoctl endpoint show --detailed {flags}"))
    return {r[3] for r in rows if r[3]}


def on_web(hosts, container: str, field: str) -> str:
    """A field of the container's web network settings (EndpointID, IPAddress), from Docker."""
    fmt = f"{{{{.NetworkSettings.Networks.web.{field}}}}}"
    return out(hosts, "node1", f"docker inspect -f '{fmt}' {container}").strip()


def network_id(hosts, name: str) -> str:
    return out(hosts, "node1", f"docker network inspect -f '{{{{.Id}}}}' {shlex.quote(name)}").strip()


# -- endpoint show ----------------------------------------------------------------------------

def test_endpoint_counts_equal_the_plugins_endpoints(hosts, found_tree):
    stored = etcd_endpoints(hosts)
    shown = summary(hosts)
    for node in NODES:
        made = docker_endpoints(hosts, node)
        assert made and made == stored[node], \
            f"{node}: Docker's calico endpoints {sorted(made)} vs etcd's {sorted(stored[node])}"
        assert shown[(node, "libnetwork")] == (1, len(made)), shown
        assert detailed_ids(hosts, "node2", f"--host={node}") == made
    # the same table from either node: it is the datastore's, not the node's
    assert summary(hosts, "node2") == shown


def test_docker_run_adds_one_endpoint_for_its_node_and_rm_removes_it(hosts):
    before = summary(hosts)
    name = "ctl_web_run"
    sh(hosts, "node1", f"docker run -d --net web --ip {RUN_IP} --name {name} {IMAGE} sleep 600")
    try:
        after = summary(hosts)
        assert after[("node1", "libnetwork")] == (1, before[("node1", "libnetwork")][1] + 1)
        assert after[("node2", "libnetwork")] == before[("node2", "libnetwork")]
        ep_id, ip = on_web(hosts, name, "EndpointID"), on_web(hosts, name, "IPAddress")
        rows = parse_table(out(hosts, "node1", f"calicoctl endpoint show --endpoint={ep_id} --detailed"))
        assert [r[:6] + r[7:] for r in rows] == [
            ["node1", "libnetwork", "libnetwork", ep_id, f"{ip}/32", "EE:EE:EE:EE:EE:EE", "active"]]
        assert rows[0][6] == network_id(hosts, "web")
        assert docker_endpoints(hosts, "node1") == etcd_endpoints(hosts)["node1"]
    finally:
        sh(hosts, "node1", f"docker rm -f {name}")
    assert summary(hosts) == before


def test_endpoint_profile_commands_on_a_libnetwork_endpoint(hosts):
    name = "ctl_web_prof"
    web, db_users = network_id(hosts, "web"), network_id(hosts, "db-users")
    sh(hosts, "node1", f"docker run -d --net web --ip {PROFILE_IP} --name {name} {IMAGE} sleep 600")
    try:
        ep = on_web(hosts, name, "EndpointID")
        assert words(out(hosts, "node2", f"calicoctl endpoint {ep} profile append {db_users}")) \
            == f"Profile(s) {db_users} appended."
        shown = parse_table(out(hosts, "node2", f"calicoctl endpoint {ep} profile show --host=node1"))
        assert shown == sorted([[web], [db_users]])
        # the profile is named after the network ID: the name is unknown to this command
        assert sh(hosts, "node1", f"calicoctl endpoint {ep} profile append web", ok=False)[1] == \
            "Profile with name web was not found.\n"
        assert words(out(hosts, "node1", f"calicoctl endpoint {ep} profile remove {db_users}")) \
            == f"Profile(s) {db_users} removed."
        assert parse_table(out(hosts, "node1", f"calicoctl endpoint {ep} profile show")) == [[web]]
        assert sh(hosts, "node1", "calicoctl endpoint nosuch profile show", ok=False)[1] == \
            "Failed to list profiles in endpoint.\n\nEndpoint nosuch is unknown to Calico.\n\n"
    finally:
        sh(hosts, "node1", f"docker rm -f {name}")


# -- container (the non-libnetwork way) -------------------------------------------------------

def test_container_add_profile_ip_and_remove(hosts):
    name, web = "ctl_plain", network_id(hosts, "web")
    sh(hosts, "node1", f"docker run -d --net none --name {name} {IMAGE} sleep 600")
    try:
        ip = ADDRESS
        assert out(hosts, "node1", f"calicoctl container add {name} {ip}") == \
            f"IP {ip} added to {name}\n\n"
        # inside: eth1 with the /32 and the default route via 169.254.1.1 (spec §3.7)
        addrs = out(hosts, "node1", f"docker exec {name} ip -4 addr show eth1")
        assert f"inet {ip}/32 " in addrs
        routes = out(hosts, "node1", f"docker exec {name} ip route").splitlines()
        assert [r.strip() for r in routes] == ["default via 169.254.1.1 dev eth1",
                                               "169.254.1.1 dev eth1 scope link"]
        assert summary(hosts)[("node1", "docker")] == (1, 1)
        rows = parse_table(out(hosts, "node1", f"calicoctl container {name} endpoint show"))
        wid = out(hosts, "node1", f"docker inspect -f '{{{{.Id}}}}' {name}").strip()
        mac = out(hosts, "node1", f"docker exec {name} cat /sys/class/net/eth1/address").strip()
        assert [r[:3] + r[4:6] + r[7:] for r in rows] == [
            ["node1", "docker", wid, f"{ip}/32", mac, "active"]]
        veth = f"cali{rows[0][3][:11]}"
        # Felix routes it; no profile yet, so nothing gets in
        settle(lambda: out(hosts, "node1", f"ip route show {ip}"),
               lambda r: f"dev {veth}" in r, 10, f"node1's route {ip} dev {veth}")
        ping = f"docker exec web_container_2 ping -c 1 -W 1 {ip}"
        assert sh(hosts, "node2", ping, ok=None)[0] != 0
        assert words(out(hosts, "node1", f"calicoctl container {name} profile set {web}")) == \
            f"Profile(s) set to {web}."
        settle(lambda: sh(hosts, "node2", ping, ok=None)[0], lambda rc: rc == 0, 15,
               f"web_container_2 (node2) to ping {ip} once it has web's profile")
        # a second address, then its removal
        extra = EXTRA
        assert out(hosts, "node1", f"calicoctl container {name} ip add {extra}") == \
            f"IP {extra} added to {name}\n"
        assert f"inet {extra}/32 " in out(hosts, "node1", f"docker exec {name} ip -4 addr show eth1")
        assert out(hosts, "node1", f"calicoctl ipam info {extra}").startswith(f"IP {extra} is assigned")
        assert out(hosts, "node1", f"calicoctl container {name} ip remove {extra}") == \
            f"IP {extra} removed from {name}\n"
        assert f"{extra}/32" not in out(hosts, "node1", f"docker exec {name} ip -4 addr show eth1")
        assert sh(hosts, "node1", f"calicoctl container {name} ip remove {extra}", ok=False)[1] == \
            "IP address is not assigned to container. Aborting.\n"
        # a CIDR: any free address of exactly that pool (one of the module's own, removed after)
        sh(hosts, "node1", f"calicoctl pool add {OWN_POOL}")
        try:
            said = out(hosts, "node1", f"calicoctl container {name} ip add {OWN_POOL}")
            auto = re.fullmatch(rf"IP (192\.168\.31\.\d+) added to {name}\n", said).group(1)
            assert f"{auto}/32" in parse_table(out(
                hosts, "node1", f"calicoctl endpoint show --detailed --workload={wid}"))[1][4]
            sh(hosts, "node1", f"calicoctl container {name} ip remove {auto}")
        finally:
            sh(hosts, "node1", f"calicoctl pool remove {OWN_POOL}")
        assert sh(hosts, "node1", f"calicoctl container add {name} {POOL}", ok=False)[1] == \
            f"{name} has already been configured with Calico Networking.\n\n"
        assert out(hosts, "node1", f"calicoctl container remove {name}") == f"Removed Calico from {wid}\n"
        assert ("node1", "docker") not in summary(hosts)
        assert sh(hosts, "node1", f"ip link show {veth}", ok=False)
        for addr in (ip, extra):
            assert sh(hosts, "node1", f"calicoctl ipam info {addr}", ok=False)[1] == \
                f"{addr} is not currently assigned\n"
        assert out(hosts, "node1", f"calicoctl container remove {name}") == \
            f"Failed find Calico data for {wid}\n"
    finally:
        sh(hosts, "node1", f"calicoctl container remove {name}; docker rm -f {name}", ok=None)


def test_container_add_beside_dockers_bridge_bumps_its_default_route(hosts):
    name = "ctl_bridged"
    sh(hosts, "node1", f"docker run -d --name {name} {IMAGE} sleep 600")
    try:
        sh(hosts, "node1", f"calicoctl container add {name} {BRIDGED} --interface=cal0")
        routes = [r.strip() for r in out(hosts, "node1", f"docker exec {name} ip route").splitlines()]
        assert "default via 169.254.1.1 dev cal0" in routes
        assert any(re.fullmatch(r"default via \S+ dev eth0\s+metric 1", r) for r in routes), routes
    finally:
        sh(hosts, "node1", f"calicoctl container remove {name}; docker rm -f {name}", ok=None)


def test_container_refusals(hosts):
    sh(hosts, "node1", f"docker run -d --net host --name ctl_hostnet {IMAGE} sleep 600")
    sh(hosts, "node1", f"docker create --net none --name ctl_stopped {IMAGE} sleep 600")
    sh(hosts, "node1", f"docker run -d --net none --name ctl_bare {IMAGE} sleep 600")
    try:
        cases = [
            ("calicoctl container add ctl_hostnet ipv4",
             "Can't add ctl_hostnet to Calico because it is running NetworkMode = host.\n\n"),
            ("calicoctl container add ctl_stopped ipv4", "ctl_stopped is not currently running.\n\n"),
            ("calicoctl container add ctl_nosuch ipv4", "Container ctl_nosuch was not found.\n"),
            ("calicoctl container add ctl_bare 10.99.0.1", "10.99.0.1 is not in any configured pools\n"),
            ("calicoctl container add ctl_bare 192.168.22.0/25",
             "Invalid CIDR specified for desired pool. No pool found for 192.168.22.0/25.\n\n"),
            ("calicoctl container ctl_bare ip add ipv4",
             "Failed to add IP address to container.\n\nContainer ctl_bare is unknown to Calico."
             "\n\nUse `calicoctl container add` to add the container to the Calico network.\n\n"),
            ("calicoctl container ctl_bare ip remove 192.168.22.9", "Container is unknown to Calico.\n"),
        ]
        for line, message in cases:
            rc, said, err = sh(hosts, "node1", line, ok=False)
            assert said + err == message, line
        # the seed has no IPv6 pool: 0.22's own message, on stderr
        rc, said, err = sh(hosts, "node1", "calicoctl container add ctl_bare ipv6", ok=False)
        assert err.strip() == ("Failed to allocate any IPs (requested 0 IPv4s and 1 IPv6s). "
                               "Pools are likely exhausted.")
    finally:
        sh(hosts, "node1", "docker rm -f ctl_hostnet ctl_stopped ctl_bare")


# -- checksystem, diags, config, version, usage -----------------------------------------------

def test_checksystem_reports_this_machine(hosts):
    rc, said, err = sh(hosts, "node1", "calicoctl checksystem --libnetwork", ok=None)
    if ipip_supported():
        assert (rc, said, err) == (0, "", "")
    else:
        # the seed's IPIP pool is added without --ipip on such a kernel, so this is a warning
        assert (rc, said, err) == (
            0, "", "WARNING: Unable to detect the ipip module as available or builtin.\n")
    rc, said, err = sh(hosts, "node2", "ETCD_AUTHORITY=192.168.20.1:1 calicoctl checksystem",
                       ok=False)
    assert "ERROR: Could not connect to etcd at 192.168.20.1:1: " in err
    rc, said, err = sh(hosts, "node2", "DOCKER_HOST=unix:///nonexistent.sock calicoctl checksystem",
                       ok=False)
    assert "ERROR: Docker daemon not running." in err


def test_diags_bundle(hosts):
    rc, said, _ = sh(hosts, "node1", "calicoctl diags")
    assert said.startswith("Collecting diagnostics\nUsing temp dir: /tmp/tmp")
    path = re.search(r"^Diags saved to (/tmp/tmp\w+/diags-\d{6}_\d{6}\.tar\.gz)$", said, re.M).group(1)
    bundle = shlex.quote(path)
    try:
        names = set(out(hosts, "node1", f"tar tzf {bundle}").split())

        def member(name: str) -> str:
            return out(hosts, "node1", f"tar xzOf {bundle} diagnostics/{name}")
        for name in ("ip_-4_route", "ip_link", "iptables-save", "ipset_list", "bird_protocols",
                     "docker_logs_calico-node", "docker_logs_calico-libnetwork", "etcd_calico"):
            assert f"diagnostics/{name}" in names, sorted(names)
        assert "diagnostics/logs/" in names
        assert set(member("ip_-4_route").splitlines()) == \
            set(out(hosts, "node1", "ip -4 route").splitlines())
        assert ":felix-FORWARD" in member("iptables-save")
        assert "Name: felix-v4-" in member("ipset_list")
        assert re.search(r"^Mesh_192_168_20_2\s+BGP\s+master\s+up\s.*Established",
                         member("bird_protocols"), re.M)
        assert "Calico node started successfully" in member("docker_logs_calico-node")
        dump = member("etcd_calico")
        assert dump.startswith("dir?, key, value\n")
        for ep in etcd_endpoints(hosts)["node1"]:
            assert re.search(rf"^FILE, /calico/v1/host/node1/workload/libnetwork/libnetwork/"
                             rf"endpoint/{ep}, \{{", dump, re.M)
    finally:
        sh(hosts, "node1", f"rm -rf {shlex.quote(path.rsplit('/', 1)[0])}")


def test_config_version_and_usage(hosts):
    assert out(hosts, "node1", "calicoctl version") == "0.22.0\n"
    assert out(hosts, "node1", "calicoctl config felix loglevel") == "info\n"   # calico/node's
    assert out(hosts, "node1", "calicoctl config bgp loglevel") == "No value configured\n"
    assert out(hosts, "node2", "calicoctl config node bgp loglevel debug") == ""
    assert calico_tree(hosts)["/calico/bgp/v1/host/node2/loglevel"] == "debug"
    assert out(hosts, "node2", "calicoctl config node bgp loglevel --remove") == "Value removed\n"
    rc, said, err = sh(hosts, "node1", "calicoctl config felix loglevel loud", ok=False)
    assert said == ("The configuration value 'loud' is not recognized as a valid value.\n\n"
                    "Use the --force option to override.\n\n")
    for line in ("calicoctl endpoint list", "calicoctl frobnicate", "calicoctl diags --upload"):
        rc, said, err = sh(hosts, "node1", line, ok=False)
        assert "Usage:" in said + err, line


def as_found(key: str, value: str | None):
    """A value as compared: an IPAM block's free list is a queue (a released ordinal goes to
    its end, as in libcalico), so only which ordinals are free counts."""
    if value is not None and key.startswith("/calico/ipam/v2/assignment/"):
        block = json.loads(value)
        return {**block, "unallocated": sorted(block.get("unallocated", []))}
    return value


def test_the_datastore_is_as_the_module_found_it(hosts, found_tree):
    before = {k: as_found(k, v) for k, v in found_tree.items()}
    after = {k: as_found(k, v) for k, v in calico_tree(hosts).items()}
    changed = {k: (before.get(k), after.get(k)) for k in before.keys() | after.keys()
               if before.get(k) != after.get(k)}
    assert changed == {}, f"key: (before, after): {changed}"
