"""Bring a lab's Calico up the way the tutorial does, with the commands a user types.

On each node `calicoctl node --ip=<ip> --libnetwork`; then `calicoctl pool add`, `docker
network create --driver calico --ipam-driver calico`, `calicoctl profile … rule add|remove`
and `docker run --net … -tid calico-net-test:1.0`, in the tutorial's order. calicoctl runs
inside the node as a user's shell would run it; Docker is driven through the SDK, which
sends the same API requests as the docker CLI.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import shlex
import shutil
import subprocess
import time
from typing import Callable

from . import docker_api, paths
from .calico import rules as calico_rules
from .errors import LabError
from .proc import wait_until
from .schema import ROLE_CALICO_NODE
from .state import LabState
from .transport import LocalNamespaceHost, lab_hosts

Log = Callable[[str], None]
DIRECTIONS = ("inbound", "outbound")


def calicoctl(host: LocalNamespaceHost, *args: str, env: dict | None = None,
              timeout: float = 90) -> str:
    argv = ["calicoctl", *args]
    if env:
        argv = ["env", *(f"{k}={v}" for k, v in env.items()), *argv]
    res = host.run(argv, timeout=timeout)
    if not res.ok:
        out = (res.stdout + res.stderr).strip().splitlines()
        raise LabError(f"{host.name}: `{shlex.join(['calicoctl', *args])}` failed (exit {res.rc}): "
                       f"{out[-1] if out else 'no output'}")
    return res.stdout


def calico_nodes(topo) -> list:
    """The hosts that run calico-node (a route reflector host need not)."""
    return [n for n in topo.nodes if ROLE_CALICO_NODE in n.roles]


def provision(st: LabState, log: Log) -> None:
    topo, hosts = st.topology, lab_hosts(st.topology)
    t0 = time.monotonic()
    nodes = calico_nodes(topo)
    first = hosts[nodes[0].name]
    # calicoctl node adds 192.168.0.0/16 when no pool exists yet; a topology that names its
    # own pools (as the tutorial's steps assume) must not get it
    node_env = {"NO_DEFAULT_POOLS": "true"} if topo.pools else None
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        list(pool.map(lambda n: calicoctl(hosts[n.name], "node", f"--ip={n.ip}", "--libnetwork",
                                          env=node_env), nodes))
    log(f"calico-node and calico-libnetwork running on {len(nodes)} node(s): "
        f"{time.monotonic() - t0:.1f}s")
    ipip_ok = ipip_supported()
    for p in topo.pools:
        if p.ipip and not ipip_ok:
            log(f"this kernel has no IPIP support: pool {p.cidr} is added without --ipip "
                "(an IPIP pool would leave cross-host routes no tunl0 can carry)")
        calicoctl(first, "pool", "add", p.cidr, *(["--ipip"] if p.ipip and ipip_ok else []),
                  *(["--nat-outgoing"] if p.nat_outgoing else []))
    _create_networks(st)
    for profile in topo.profiles:
        _apply_profile(first, profile)
    _run_workloads(st)
    log(f"{len(topo.pools)} pool(s), {len(topo.networks)} network(s), {len(topo.profiles)} "
        f"profile(s), {len(topo.workloads)} workload(s): {time.monotonic() - t0:.1f}s")
    if len(nodes) > 1:
        wait_bgp(hosts, [n.name for n in nodes])
        log(f"BGP sessions Established: {time.monotonic() - t0:.1f}s")


def ipip_supported() -> bool:
    """Whether tunl0 can exist here: the ipip module is loaded (or built in), or loads."""
    if os.path.isdir("/sys/module/ipip"):
        return True
    return shutil.which("modprobe") is not None and subprocess.run(
        ["modprobe", "-q", "ipip"], capture_output=True).returncode == 0


def _create_networks(st: LabState) -> None:
    topo = st.topology
    first = calico_nodes(topo)[0].name
    with docker_api.connect(paths.NodePaths(first).docker_sock) as c:
        for net in topo.networks:
            ipam = {"Driver": net.ipam_driver, "Config": [{"Subnet": net.subnet}] if net.subnet else []}
            c.api.create_network(net.name, driver=net.driver, ipam=ipam)
    # a global network reaches the other engines through the cluster store, not at once
    for node in [n.name for n in calico_nodes(topo) if n.name != first]:
        with docker_api.connect(paths.NodePaths(node).docker_sock) as c:
            wanted = {n.name for n in topo.networks}
            wait_until(lambda: wanted <= {n["Name"] for n in c.api.networks()}, 30,
                       f"networks {sorted(wanted)} to appear on {node}", 0.2)


def _apply_profile(host: LocalNamespaceHost, profile) -> None:
    """Make the profile's rules equal the topology's lists with `rule add|remove` commands."""
    for tag in profile.tags:
        if tag not in calicoctl(host, "profile", profile.name, "tag", "show").split():
            calicoctl(host, "profile", profile.name, "tag", "add", tag)
    current = json.loads(calicoctl(host, "profile", profile.name, "rule", "json"))
    for direction in DIRECTIONS:
        wanted_text = getattr(profile.rules, direction)
        if wanted_text is None:
            continue
        wanted = [calico_rules.parse_rule(shlex.split(r)) for r in wanted_text]
        have = current.get(f"{direction}_rules", [])
        keep = 0
        while keep < min(len(have), len(wanted)) and calico_rules.rules_equal(have[keep], wanted[keep]):
            keep += 1
        for position in range(len(have), keep, -1):
            calicoctl(host, "profile", profile.name, "rule", "remove", direction, f"--at={position}")
        for text in wanted_text[keep:]:
            calicoctl(host, "profile", profile.name, "rule", "add", direction, *shlex.split(text))


def _run_workloads(st: LabState) -> None:
    topo = st.topology

    def start(node: str) -> None:
        with docker_api.connect(paths.NodePaths(node).docker_sock, timeout=60) as c:
            for w in (w for w in topo.workloads if w.node == node):
                endpoint = {w.network: c.api.create_endpoint_config(ipv4_address=w.ip)}
                host_config = c.api.create_host_config(network_mode=w.network)
                container = c.api.create_container(
                    w.image, command=list(w.command) if w.command else None, name=w.name,
                    hostname=w.name.replace("_", "-"), tty=True, stdin_open=True,
                    host_config=host_config,
                    networking_config=c.api.create_networking_config(endpoint))
                c.api.start(container["Id"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(topo.nodes)) as pool:
        list(pool.map(start, topo.node_names))


def wait_bgp(hosts, nodes, timeout: float = 30) -> None:
    """Until every BGP protocol of every listed node's BIRD is Established."""
    def established() -> bool:
        for node in nodes:
            res = hosts[node].run(["birdc", "-s", "/var/run/calico/bird.ctl", "show", "protocols"],
                                  timeout=5)
            bgp = [line.split() for line in res.stdout.splitlines()
                   if line.split()[:2][-1:] == ["BGP"]]
            if not res.ok or not bgp or any(row[-1] != "Established" for row in bgp):
                return False
        return True
    wait_until(established, timeout, "every BIRD BGP session to be Established", 0.3)
