"""`python -m lab migrate-rr [--reverse]`: the tutorial's move from the full node-to-node mesh
to route reflectors, with the commands a user runs, and its way back.

Forward: `calicoctl bgp node-mesh off`; calico/routereflector started on each route reflector
host of the topology (host network, IP=<its address>); its `rr_v4` key written with curl as
the tutorial does; `calicoctl bgp default-node-as` read; `calicoctl bgp peer add <rr ip> as
<asn>`. Then wait until every node and reflector shows its sessions Established.
"""
from __future__ import annotations

import json
import time
from typing import Callable

from . import docker_api, paths
from .calico import image as calico_image
from .errors import LabError
from .provision import calicoctl, calico_nodes, wait_bgp
from .state import LabState
from .transport import lab_hosts

Log = Callable[[str], None]
RR_CONTAINER = "calico-routereflector"


def route_reflectors(st: LabState) -> list[tuple[str, str, str | None]]:
    """(host name, ip, cluster id) of every route reflector the topology declares."""
    topo = st.topology
    if not topo.bgp.route_reflectors:
        raise LabError(f"topology {topo.name} declares no route reflector (bgp.route_reflectors): "
                       "use `--topology rr`")
    return [(rr.node, topo.node(rr.node).ip, rr.cluster_id) for rr in topo.bgp.route_reflectors]


def migrate(st: LabState, log: Log, reverse: bool = False) -> float:
    """Returns the seconds from the last command to every session Established."""
    topo, hosts = st.topology, lab_hosts(st.topology)
    nodes = [n.name for n in calico_nodes(topo)]
    first = hosts[nodes[0]]
    rrs = route_reflectors(st)
    etcd = topo.etcd_url
    if not reverse:
        calicoctl(first, "bgp", "node-mesh", "off")
        for name, ip, cluster_id in rrs:
            _start_rr(st, name, ip)
            value = json.dumps({"ip": ip, "cluster_id": cluster_id} if cluster_id else {"ip": ip})
            _curl(hosts[name], "-XPUT", f"{etcd}/v2/keys/calico/bgp/v1/rr_v4/{ip}", "-d", f"value={value}")
        asn = calicoctl(first, "bgp", "default-node-as").strip()
        for _, ip, _ in rrs:
            calicoctl(first, "bgp", "peer", "add", ip, "as", asn)
        log(f"mesh off; route reflector(s) {', '.join(ip for _, ip, _ in rrs)} as {asn} peered")
    else:
        for _, ip, _ in rrs:
            calicoctl(first, "bgp", "peer", "remove", ip)
        for name, ip, _ in rrs:
            _curl(hosts[name], "-XDELETE", f"{etcd}/v2/keys/calico/bgp/v1/rr_v4/{ip}")
            with docker_api.connect(paths.NodePaths(name).docker_sock) as c:
                for cont in c.containers.list(all=True, filters={"name": RR_CONTAINER}):
                    cont.remove(force=True)
        calicoctl(first, "bgp", "node-mesh", "on")
        log("route reflector(s) removed; node-to-node mesh on")
    t0 = time.monotonic()
    wait_bgp(hosts, nodes + ([] if reverse else [name for name, _, _ in rrs]), timeout=60)
    took = time.monotonic() - t0
    log(f"every BGP session Established {took:.1f}s after the last step")
    return took


def _start_rr(st: LabState, name: str, ip: str) -> None:
    """The tutorial's `docker run --net=host -d -e IP=… -e ETCD_AUTHORITY=… -v /var/log/:/var/log/
    calico/routereflector` on the reflector host (plus /var/run/calico for its BIRD socket)."""
    env = {"IP": ip, "ETCD_AUTHORITY": st.topology.etcd_authority}
    binds = {"/var/log": {"bind": "/var/log", "mode": "rw"},
             "/var/run/calico": {"bind": "/var/run/calico", "mode": "rw"}}
    with docker_api.connect(paths.NodePaths(name).docker_sock) as c:
        calico_image.run_container(c, RR_CONTAINER, calico_image.ROUTE_REFLECTOR_IMAGE, env, binds)


def _curl(host, *args: str) -> None:
    res = host.run(["curl", "-sS", "-L", "--max-time", "10", *args], timeout=20)
    if not res.ok or '"errorCode"' in res.stdout:
        raise LabError(f"{host.name}: curl {' '.join(args)} failed: {(res.stdout + res.stderr).strip()}")
