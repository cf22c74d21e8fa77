"""etcd v2 key paths of the Calico v1 data model (spec §1.1). CIDRs in keys use '-' for '/'."""
from __future__ import annotations

READY = "/calico/v1/Ready"
CONFIG = "/calico/v1/config"                 # global Felix config: CONFIG/<Param>
HOSTS = "/calico/v1/host"
PROFILES = "/calico/v1/policy/profile"
POOLS_V4 = "/calico/v1/ipam/v4/pool"
POOLS_V6 = "/calico/v1/ipam/v6/pool"
IPAM_CONFIG = "/calico/ipam/v2/config"
BLOCKS_V4 = "/calico/ipam/v2/assignment/ipv4/block"
IPAM_HOSTS = "/calico/ipam/v2/host"
BGP_GLOBAL = "/calico/bgp/v1/global"
BGP_HOSTS = "/calico/bgp/v1/host"
RR_V4 = "/calico/bgp/v1/rr_v4"
LIBNETWORK = "/calico/libnetwork/v1"
FELIX_HOSTS = "/calico/felix/v1/host"        # Felix status reports: FELIX_HOSTS/<h>/status

ORCHESTRATOR_LIBNETWORK = "libnetwork"
WORKLOAD_LIBNETWORK = "libnetwork"


def cidr_key(cidr: str) -> str:
    return cidr.replace("/", "-")


def key_cidr(key: str) -> str:
    """The last path element of a pool/block key back to CIDR form."""
    last = key.rstrip("/").rsplit("/", 1)[-1]
    head, _, prefix = last.rpartition("-")
    return f"{head}/{prefix}"


def config(name: str) -> str:
    return f"{CONFIG}/{name}"


def host(hostname: str) -> str:
    return f"{HOSTS}/{hostname}"


def host_config(hostname: str, name: str) -> str:
    return f"{HOSTS}/{hostname}/config/{name}"


def bird_ip(hostname: str) -> str:
    return f"{HOSTS}/{hostname}/bird_ip"


def workload(hostname: str, orchestrator: str, workload_id: str) -> str:
    return f"{HOSTS}/{hostname}/workload/{orchestrator}/{workload_id}"


def endpoint(hostname: str, endpoint_id: str, orchestrator: str = ORCHESTRATOR_LIBNETWORK,
             workload: str = WORKLOAD_LIBNETWORK) -> str:
    return f"{HOSTS}/{hostname}/workload/{orchestrator}/{workload}/endpoint/{endpoint_id}"


def profile(name: str) -> str:
    return f"{PROFILES}/{name}"


def pool_v4(cidr: str) -> str:
    return f"{POOLS_V4}/{cidr_key(cidr)}"


def block_v4(cidr: str) -> str:
    return f"{BLOCKS_V4}/{cidr_key(cidr)}"


def bgp_host(hostname: str, leaf: str = "") -> str:
    return f"{BGP_HOSTS}/{hostname}" + (f"/{leaf}" if leaf else "")


def global_peer_v4(ip: str) -> str:
    return f"{BGP_GLOBAL}/peer_v4/{ip}"


def rr_v4(ip: str) -> str:
    return f"{RR_V4}/{ip}"


def libnetwork_network(network_id: str) -> str:
    return f"{LIBNETWORK}/{network_id}"
