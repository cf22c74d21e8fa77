"""Build the embedded lab: fabric, management host, nodes, etcd, one dockerd per node, image.

Each node is a network + mount + UTS namespace (hostname = node name) whose eth0 sits on a
bridge in the fabric namespace. No lab namespace gets a default route. The build process
itself joins the management namespace for every connection it makes (etcd health, nothing
else: docker is reached through unix sockets), so nothing is ever sent from the root
namespace.
"""
from __future__ import annotations

import concurrent.futures
import ipaddress
import json
import os
import secrets
import shlex
import time
import urllib.error
import urllib.request
from typing import Callable

from . import docker_api, image, netns, paths, preflight, provision, sshd, state, teardown
from .calico import image as calico_image
from .errors import LabError
from .proc import Daemon, run, spawn, wait_until
from .topology import Topology
from .transport import node_exec_argv

Log = Callable[[str], None]
GATEWAY_STAND_IN = "169.254.1.1/32"
DOCKERD_PORT = 2376   # --cluster-advertise port (libnetwork's serf gossip rides next to it)


def up(topology: Topology, log: Log = print, calico: bool = True) -> state.LabState:
    """Build the lab from scratch (cleaning an earlier crash's leftovers first).

    calico=False stops after the hosts (etcd, dockerd, images): the tutorial's own steps,
    from `calicoctl node` on, are then the user's to type."""
    preflight.check_all()
    try:
        previous = state.load()
    except LabError:
        previous = None   # unreadable state: treat as a crash and sweep
    if previous is not None and previous.alive_daemons():
        raise LabError(f"a lab is already up (topology {previous.topology.name}, nodes "
                       f"{', '.join(previous.topology.node_names)}): run `python -m lab down` first, "
                       "or reuse it with `pytest suites/ --lab-attach`")
    if teardown.leftovers():
        log("cleaning up the leftovers of an earlier lab")
        teardown.down(previous, log)
    st = state.LabState(topology=topology, lab_id=secrets.token_hex(3))
    try:
        _build(st, log, calico)
    except BaseException:
        log("bring-up failed: removing what was built")
        teardown.down(st, log)
        raise
    return st


def _build(st: state.LabState, log: Log, calico: bool) -> None:
    topo, t0 = st.topology, time.monotonic()
    _make_dirs(topo)
    st.save()   # early, so a crash mid-build is found by `status`/`down`
    _make_fabric(topo)
    for node in topo.nodes:
        _make_node_namespaces(node.name)
    sshd.start(st)   # waited for below, beside the slower dockerds
    st.save()
    log(f"fabric, {len(topo.nodes)} node namespaces and {topo.management.name}: "
        f"{time.monotonic() - t0:.1f}s")

    switch = netns.NetnsSwitch()
    switch.enter(st.mgmt_netns_file)
    try:
        st.daemons["etcd"] = _start_etcd(topo)
        st.save()
        _wait_etcd(topo)
        log(f"etcd {topo.etcd_url} healthy (v2 API): {time.monotonic() - t0:.1f}s")
        for node in topo.nodes:
            st.daemons[f"dockerd@{node.name}"] = _start_dockerd(topo, node.name, node.ip)
        st.save()
        tar = image.build_rootfs_tar(paths.IMAGE_TAR)
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(topo.nodes) + 1) as pool:
            ssh_ready = pool.submit(sshd.wait_ready, st)   # beside the slower dockerds
            list(pool.map(lambda n: _ready_node(st, n, tar), topo.node_names))
            ssh_ready.result()
        log(f"{len(topo.nodes)} dockerd(s) up with {image.IMAGE} and the calico images, "
            f"sshd on every node: {time.monotonic() - t0:.1f}s")
        st.save()
        if calico:
            provision.provision(st, log)
    finally:
        switch.leave()
    st.save()


def _make_dirs(topo: Topology) -> None:
    for d in (paths.RUN, paths.NS_DIR, paths.VAR, paths.ETCD_DIR):
        os.makedirs(d, exist_ok=True)
    # `unshare --mount=FILE` needs FILE on a private mount (feasibility G6)
    run(["mount", "-n", "--bind", paths.NS_DIR, paths.NS_DIR])
    run(["mount", "-n", "--make-private", paths.NS_DIR])
    for node in topo.nodes:
        p = paths.NodePaths(node.name)
        for d in (p.run_dir, p.var_dir, p.data_root, p.etc_docker):
            os.makedirs(d, exist_ok=True)


def _ip_batch(ns: str | None, commands: list[str]) -> None:
    argv = ["ip"] + (["-n", ns] if ns else []) + ["-batch", "-"]
    run(argv, input="\n".join(commands) + "\n")


def _make_fabric(topo: Topology) -> None:
    """The fabric bridge, then one host (management + nodes) per veth on it."""
    fabric = paths.FABRIC_NETNS
    run(["ip", "netns", "add", fabric])
    _ip_batch(fabric, ["link set lo up", f"link add {paths.FABRIC_BRIDGE} type bridge",
                       f"link set {paths.FABRIC_BRIDGE} up"])
    prefix = ipaddress.ip_network(topo.fabric.subnet).prefixlen
    hosts = [(topo.management.name, topo.management.ip)] + [(n.name, n.ip) for n in topo.nodes]
    for name, ip in hosts:
        host = paths.NodePaths(name)
        run(["ip", "netns", "add", host.netns])
        # both ends are born inside their namespaces: nothing ever appears in the root one
        _ip_batch(None, [f"link add eth0 netns {host.netns} type veth peer name "
                         f"{host.fabric_veth} netns {fabric}"])
        _ip_batch(fabric, [f"link set {host.fabric_veth} master {paths.FABRIC_BRIDGE}",
                           f"link set {host.fabric_veth} up"])
        _ip_batch(host.netns, ["link set lo up", f"addr add {ip}/{prefix} dev eth0",
                               "link set eth0 up"])


def _make_node_namespaces(node: str) -> None:
    p = paths.NodePaths(node)
    # forwarding before dockerd starts, or dockerd sets the FORWARD policy to DROP (G2)
    run(netns.nsenter(["sysctl", "-qw", "net.ipv4.ip_forward=1"], net=p.netns_file))
    # Real hosts have a default route, which is what lets them answer the workloads' proxy
    # ARP for 169.254.1.1; lab nodes must not have one, so this host route stands in (G1)
    _ip_batch(p.netns, [f"route add {GATEWAY_STAND_IN} dev lo"])
    for f in (p.mnt_file, p.uts_file):
        open(f, "w").close()
    cg, exp = f"{p.var_dir}/.mnt-cgroup", f"{p.var_dir}/.mnt-run"
    for d in (cg, exp, p.var_log):
        os.makedirs(d, exist_ok=True)
    q = shlex.quote
    # A private /run per node (docker.sock, plugins, xtables.lock, sshd's privsep chroot
    # /run/sshd) with the host-visible run dir moved back over it; a fresh /sys so
    # /sys/class/net shows this netns; own /etc/docker so each engine has its own identity.
    # `mount -n` keeps /run/mount clean.
    script = f"""
hostname {q(node)}
mount -n --rbind /sys/fs/cgroup {q(cg)}
mount -n --bind {q(p.run_dir)} {q(exp)}
mount -n -t sysfs sysfs /sys
mount -n --move {q(cg)} /sys/fs/cgroup
mount -n -t tmpfs -o mode=755 tmpfs /run
mkdir -p {q(p.run_dir)} /run/docker/plugins /run/lock
mkdir -m 0755 /run/sshd
mount -n --move {q(exp)} {q(p.run_dir)}
mount -n --bind {q(p.etc_docker)} /etc/docker
mount -n --bind {q(p.var_log)} /var/log
# a tutorial host's root has no personal shell setup: this machine's (pyenv init…) would
# run before every command over SSH (bash sources ~/.bashrc for sshd's sessions)
if [ -f /root/.bashrc ]; then mount -n --bind /dev/null /root/.bashrc; fi
"""
    run(netns.nsenter(["unshare", f"--mount={p.mnt_file}", f"--uts={p.uts_file}",
                       "--propagation", "private", "sh", "-ec", script], net=p.netns_file))


def _start_etcd(topo: Topology) -> Daemon:
    """The tutorial's etcd on its node: clients on <node ip>:2379, v2 API enabled."""
    node = topo.node(topo.etcd.node)
    client_url, peer_url = topo.etcd_url, "http://127.0.0.1:2380"
    argv = ["etcd", "--name", node.name, "--data-dir", f"{paths.ETCD_DIR}/data",
            "--enable-v2=true",
            "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"{node.name}={peer_url}"]
    return spawn("etcd", node_exec_argv(node.name, argv), f"{paths.ETCD_DIR}/etcd.log")


def _wait_etcd(topo: Topology) -> None:
    """Healthy, and answering the v2 keys API (which Docker's libkv and Calico use)."""
    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{topo.etcd_url}/health", timeout=1) as r:
                if json.load(r).get("health") not in ("true", True):
                    return False
            with urllib.request.urlopen(f"{topo.etcd_url}/v2/keys/", timeout=1) as r:
                return r.status == 200
        except (OSError, ValueError, urllib.error.URLError):
            return False
    wait_until(healthy, 30, f"etcd at {topo.etcd_url} (log: {paths.ETCD_DIR}/etcd.log)", 0.1)


def dockerd_argv(topo: Topology, node: str, ip: str) -> list[str]:
    """The tutorial's override.conf ExecStart, plus what running several daemons needs."""
    p = paths.NodePaths(node)
    return ["dockerd", "-H", "unix:///var/run/docker.sock", "-H", f"unix://{p.docker_sock}",
            f"--cluster-store=etcd://{topo.etcd_authority}",
            f"--cluster-advertise={ip}:{DOCKERD_PORT}",
            "--data-root", p.data_root, "--exec-root", "/run/docker",
            "--pidfile", "/run/docker.pid",
            # the tutorial's workloads run `sh` as PID 1, which ignores SIGTERM: don't wait
            # the default 15 s for each of them when a node's docker is stopped
            "--shutdown-timeout", "2",
            # its own cgroup parent, so teardown can find every container of the lab
            "--cgroup-parent", f"/{p.netns}"]


def _start_dockerd(topo: Topology, node: str, ip: str, cluster_store: bool = True) -> Daemon:
    argv = dockerd_argv(topo, node, ip)
    if not cluster_store:
        argv = [a for a in argv if not a.startswith(("--cluster-store=", "--cluster-advertise="))]
    return spawn(f"dockerd@{node}", node_exec_argv(node, argv), paths.NodePaths(node).log("dockerd"))


def _ready_node(st: state.LabState, node: str, tar: str) -> None:
    _wait_dockerd(st, node)
    with docker_api.connect(paths.NodePaths(node).docker_sock, timeout=60) as c:
        image.import_image(c.api, tar)
        calico_image.import_images(c.api)


def _wait_dockerd(st: state.LabState, node: str) -> None:
    p, daemon = paths.NodePaths(node), st.daemons[f"dockerd@{node}"]

    def answering() -> bool:
        if not daemon.alive():
            raise LabError(f"dockerd on {node} exited; see {p.log('dockerd')}")
        if not os.path.exists(p.docker_sock):
            return False
        try:
            with docker_api.connect(p.docker_sock, timeout=2) as c:
                return bool(c.ping())
        except docker_api.ERRORS:
            return False
    wait_until(answering, 60, f"dockerd on {node} (log: {p.log('dockerd')})", 0.1)


# -- restarting one daemon (fault tests, and whoever needs to bring a node back) --------------

def start_etcd(st: state.LabState) -> None:
    """(Re)start etcd on its node with the same data directory, and wait until healthy."""
    st.daemons["etcd"] = _start_etcd(st.topology)
    st.save()
    with netns.inside(st.mgmt_netns_file):
        _wait_etcd(st.topology)


def start_dockerd(st: state.LabState, node: str, cluster_store: bool = True) -> None:
    """(Re)start one node's dockerd and wait for it; cluster_store=False plants the fault of
    a Docker started without the tutorial's override.conf."""
    st.daemons[f"dockerd@{node}"] = _start_dockerd(st.topology, node, st.topology.node(node).ip,
                                                   cluster_store)
    st.save()
    _wait_dockerd(st, node)
