"""Faults planted in a running embedded lab, each with its undo, for the suites' fault tests.

A fault is what an operator could do to a real lab (or what goes wrong there): stop a
daemon, delete a route, turn a knob. Calico heals some of them by itself within a second
(BIRD reinstalls a deleted route it owns), so those are planted with that node's BIRD frozen
(SIGSTOP) — which is itself a fault the bgp suite must report.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Callable

from fixtures.facts.host_facts.docker_facts import read_container_file
from lab import builder, docker_api, netns, paths, proc, state
from lab.transport import lab_hosts


@dataclass
class Fault:
    name: str
    plant: Callable[[], None]
    restore: Callable[[], None]


class Lab:
    """The running lab, with the handful of operations faults are made of."""

    def __init__(self) -> None:
        self.st = state.load()
        self.hosts = lab_hosts(self.st.topology)

    def sh(self, node: str, *argv: str) -> str:
        res = self.hosts[node].run(list(argv), timeout=60)
        assert res.ok, f"{node}: {' '.join(argv)}: {res.stdout + res.stderr}"
        return res.stdout

    def docker(self, node: str):
        return docker_api.connect(paths.NodePaths(node).docker_sock)

    def calicoctl(self, node: str, *args: str) -> str:
        return self.sh(node, "calicoctl", *args)

    def bird_pids(self, node: str) -> list[int]:
        """calico-node's BIRD on that node: a `bird` process in the node's network namespace."""
        return self.pids_in(node, ["-x", "bird"])

    def confd_pids(self, node: str) -> list[int]:
        """The confd of calico-node (or of calico/routereflector) on that node."""
        return self.pids_in(node, ["-f", "--", "-m lab.calico.bird"])

    def pids_in(self, node: str, pgrep_args: list[str]) -> list[int]:
        want = os.stat(paths.NodePaths(node).netns_file).st_ino
        pids = []
        for pid in subprocess.run(["pgrep", *pgrep_args], capture_output=True, text=True).stdout.split():
            try:
                if os.stat(f"/proc/{pid}/ns/net").st_ino == want:
                    pids.append(int(pid))
            except OSError:
                pass
        assert pids, f"no process `pgrep {' '.join(pgrep_args)}` on {node}"
        return pids

    def signal_bird(self, node: str, sig: int) -> None:
        for pid in self.bird_pids(node):
            proc._signal(pid, sig)

    def etcd(self):
        import etcd
        host, port = self.st.topology.etcd_authority.split(":")
        return etcd.Client(host=host, port=int(port))

    def in_mgmt(self):
        return netns.inside(self.st.mgmt_netns_file)

    def wait_bgp(self, timeout: float = 60) -> None:
        nodes = self.st.topology.node_names

        def established() -> bool:
            for n in nodes:
                out = self.hosts[n].run(["birdc", "-s", "/var/run/calico/bird.ctl", "show", "protocols"],
                                        timeout=5).stdout
                rows = [line.split() for line in out.splitlines() if " BGP " in line]
                if len(rows) < len(nodes) - 1 or any(r[-1] != "Established" for r in rows):
                    return False
            return True
        proc.wait_until(established, timeout, "BGP sessions to be Established again", 0.5)


def frozen_bird(lab: Lab, node: str, then: Callable[[], None] = lambda: None,
                undo: Callable[[], None] = lambda: None) -> tuple[Callable, Callable]:
    def plant():
        lab.signal_bird(node, signal.SIGSTOP)
        then()

    def restore():
        undo()
        lab.signal_bird(node, signal.SIGCONT)
    return plant, restore


def endpoint_key_of(lab: Lab, container: str, node: str) -> tuple[str, str]:
    with lab.docker(node) as c:
        info = c.api.inspect_container(container)
    endpoint_id = next(iter(info["NetworkSettings"]["Networks"].values()))["EndpointID"]
    key = f"/calico/v1/host/{node}/workload/libnetwork/libnetwork/endpoint/{endpoint_id}"
    return key, endpoint_id


def restart_dockerd(lab: Lab, node: str, cluster_store: bool) -> None:
    proc.stop([lab.st.daemons[f"dockerd@{node}"]])
    builder.start_dockerd(lab.st, node, cluster_store=cluster_store)


def restart_workloads(lab: Lab, node: str) -> None:
    """What an operator does after a Docker restart: start the node's stopped containers."""
    with lab.docker(node) as c:
        for info in c.api.containers(all=True):
            if info["State"] != "running":
                c.api.start(info["Id"])


def json_value(lab: Lab, key: str):
    with lab.in_mgmt():
        return json.loads(lab.etcd().read(key).value)


def blocks_owned_by(lab: Lab, node: str) -> list[str]:
    """Block CIDRs whose host affinity marker names `node`, from etcd."""
    import etcd
    with lab.in_mgmt():
        try:
            listing = lab.etcd().read(f"/calico/ipam/v2/host/{node}/ipv4/block", recursive=True)
        except etcd.EtcdKeyNotFound:
            return []
    return sorted(leaf.key.rsplit("/", 1)[1].replace("-", "/") for leaf in listing.leaves
                  if not leaf.dir)


def revive_workloads(lab: Lab, node: str) -> None:
    """After Docker died with the plugin container, its workloads' Calico endpoints were never
    torn down: drop endpoint keys whose veth is gone, release their addresses with
    `calicoctl ipam release`, then start the containers again (what an operator does)."""
    import etcd
    base = f"/calico/v1/host/{node}/workload/libnetwork/libnetwork/endpoint"
    links = lab.sh(node, "ip", "-o", "link", "show")
    with lab.in_mgmt():
        try:
            leaves = [x for x in lab.etcd().read(base, recursive=True).leaves if not x.dir]
        except etcd.EtcdKeyNotFound:
            leaves = []
        stale = [(x.key, json.loads(x.value)) for x in leaves
                 if f" {json.loads(x.value)['name']}@" not in links]
        for key, _ in stale:
            lab.etcd().delete(key)
    for _, ep in stale:
        for net in ep.get("ipv4_nets", []):
            lab.hosts[node].run(["calicoctl", "ipam", "release", net.split("/")[0]], timeout=30)
    with lab.docker(node) as c:
        for info in c.api.containers(all=True, filters={"status": "exited"}):
            c.api.start(info["Id"])


def edited_bird_config(lab: Lab, node: str, container: str, path: str,
                       edit: Callable[[str], str]) -> tuple[Callable, Callable]:
    """Plant a BIRD configuration that differs from what the datastore says, as if confd had
    missed a change: confd is frozen (else it rewrites the file within its interval), the file
    edited inside the container and BIRD reconfigured; undone in reverse."""
    saved = {}

    def configure():
        lab.sh(node, "birdc", "-s", "/var/run/calico/bird.ctl", "configure")

    def write(text: str):
        import io
        import tarfile
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            data = text.encode()
            info = tarfile.TarInfo(os.path.basename(path))
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        with lab.docker(node) as c:
            c.containers.get(container).put_archive(os.path.dirname(path), buf.getvalue())

    def plant():
        for pid in lab.confd_pids(node):
            proc._signal(pid, signal.SIGSTOP)
        with lab.docker(node) as c:     # not `docker exec cat`: a loaded dockerd can lose its output
            saved["text"] = read_container_file(c, container, path).value
        assert saved["text"], f"{node}: cannot read {path} in {container}"
        write(edit(saved["text"]))
        configure()

    def restore():
        write(saved["text"])
        configure()
        for pid in lab.confd_pids(node):
            proc._signal(pid, signal.SIGCONT)
    return plant, restore


def without_protocol(name: str) -> Callable[[str], str]:
    """Drop `protocol bgp NAME … { … }` from a BIRD config."""
    def edit(text: str) -> str:
        out, skipping = [], False
        for line in text.splitlines(keepends=True):
            if line.startswith(f"protocol bgp {name} "):
                skipping = True
            elif skipping and line.startswith("}"):
                skipping = False
                continue
            if not skipping:
                out.append(line)
        return "".join(out)
    return edit


def with_protocol(block: str) -> Callable[[str], str]:
    return lambda text: text + "\n" + block + "\n"


# Felix repairs iptables/ipset drift only at this interval's full check (or when it restarts)
REFRESH_KEY = "/calico/v1/host/{}/config/IptablesRefreshInterval"


def held_by_felix(lab, node, plant_fault):
    """Plant a kernel fault on `node` that Felix must not repair before the suite has run: its
    refresh interval goes up first (Felix applies config in well under a second). Restoring
    deletes that setting: a config change restarts Felix, which repairs the kernel."""
    key = REFRESH_KEY.format(node)

    def plant():
        with lab.in_mgmt():
            lab.etcd().write(key, "3600")
        time.sleep(1)
        plant_fault()

    def restore():
        with lab.in_mgmt():
            lab.etcd().delete(key)
    return plant, restore


def felix_rule(lab, node, chain_suffix, pattern):
    """(chain, rule spec) of the first rule in a felix-p-…-<suffix> chain whose spec contains
    `pattern` (profile chains are named after network ids, so they are looked up)."""
    for line in lab.sh(node, "iptables-save", "-t", "filter").splitlines():
        head, _, spec = line.partition(" ")[2].partition(" ")
        if (line.startswith("-A felix-p-") and head.endswith(chain_suffix)
                and pattern in spec and "MARK" in spec):
            return head, spec
    raise AssertionError(f"{node}: no felix-p-*{chain_suffix} rule with {pattern!r}")
