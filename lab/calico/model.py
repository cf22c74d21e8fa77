"""Typed view of the Calico v1 datastore, as Felix and confd read it (spec §1).

`datastore.snapshot()` builds a Snapshot from one recursive etcd read; the Felix agent and
the BIRD config generator are pure functions of it. Rules stay plain dicts with Felix's
field names (spec §2.1), exactly as stored in etcd.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

DEFAULT_AS = "64511"


@dataclass(frozen=True)
class Pool:
    cidr: str
    ipip: bool = False            # stored as "ipip": "tunl0"
    masquerade: bool = False      # nat-outgoing
    ipam: bool = True             # false for libnetwork default-IPAM pools
    disabled: bool = False        # only while `pool remove` runs

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.ip_network(self.cidr)


@dataclass(frozen=True)
class Endpoint:
    hostname: str
    orchestrator_id: str
    workload_id: str
    endpoint_id: str
    name: str                     # host-side interface, cali<id[:11]>
    mac: str
    profile_ids: tuple[str, ...]
    ipv4_nets: tuple[str, ...]
    ipv6_nets: tuple[str, ...] = ()
    state: str = "active"
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def ipv4_addrs(self) -> tuple[str, ...]:
        """Address part only: Felix ignores the prefix length."""
        return tuple(n.split("/")[0] for n in self.ipv4_nets)


@dataclass(frozen=True)
class Profile:
    name: str
    tags: tuple[str, ...]
    inbound: tuple[dict, ...]     # rule dicts, Felix field names
    outbound: tuple[dict, ...]
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Peer:
    ip: str
    as_num: str                   # a string in etcd ({"ip": …, "as_num": "64512"})


@dataclass(frozen=True)
class Host:
    hostname: str
    bird_ip: str | None           # /calico/v1/host/<h>/bird_ip
    ip_addr_v4: str | None        # /calico/bgp/v1/host/<h>/ip_addr_v4
    ip_addr_v6: str | None = None
    as_num: str | None = None     # per-node AS, else the global one applies
    peers_v4: tuple[Peer, ...] = ()
    config: tuple[tuple[str, str], ...] = ()   # per-host Felix config
    loglevel: str | None = None   # /calico/bgp/v1/host/<h>/loglevel, over the global one

    def config_value(self, name: str) -> str | None:
        return dict(self.config).get(name)


@dataclass(frozen=True)
class Block:
    cidr: str
    affinity: str | None          # hostname, from "host:<hostname>"; None when ""
    allocations: tuple[int | None, ...] = ()
    unallocated: tuple[int, ...] = ()
    strict_affinity: bool = False
    attributes: tuple[dict, ...] = ()


@dataclass(frozen=True)
class RouteReflector:
    ip: str
    cluster_id: str | None = None


@dataclass(frozen=True)
class Snapshot:
    etcd_index: int = 0
    ready: bool = False
    config: tuple[tuple[str, str], ...] = ()   # global Felix config
    hosts: tuple[Host, ...] = ()
    pools: tuple[Pool, ...] = ()               # IPv4
    profiles: tuple[Profile, ...] = ()
    endpoints: tuple[Endpoint, ...] = ()
    blocks: tuple[Block, ...] = ()             # IPv4 allocation blocks
    affinities: tuple[tuple[str, str], ...] = ()   # (hostname, block cidr) from ipam/v2/host keys
    as_num: str = DEFAULT_AS                   # /calico/bgp/v1/global/as_num
    node_mesh: bool = True                     # absent = enabled
    global_peers_v4: tuple[Peer, ...] = ()
    route_reflectors: tuple[RouteReflector, ...] = ()
    libnetwork_networks: tuple[tuple[str, str], ...] = ()   # (network id, stored JSON text)
    loglevel: str | None = None                # /calico/bgp/v1/global/loglevel

    # -- lookups used by Felix and confd ---------------------------------------------------
    def config_value(self, name: str, hostname: str | None = None):
        """Per-host config overrides global config (spec §1.9)."""
        if hostname is not None:
            h = self.host(hostname)
            if h is not None and h.config_value(name) is not None:
                return h.config_value(name)
        return dict(self.config).get(name)

    def host(self, hostname: str) -> Host | None:
        return next((h for h in self.hosts if h.hostname == hostname), None)

    def profile(self, name: str) -> Profile | None:
        return next((p for p in self.profiles if p.name == name), None)

    def host_blocks(self, hostname: str) -> tuple[str, ...]:
        return tuple(sorted(c for h, c in self.affinities if h == hostname))

    def host_as(self, hostname: str) -> str:
        h = self.host(hostname)
        return h.as_num if h is not None and h.as_num else self.as_num
