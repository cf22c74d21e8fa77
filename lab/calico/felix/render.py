"""render(snapshot, hostname) -> Desired: everything Felix 1.4.1b2 would program on one host,
computed without any I/O (spec §5). The Dataplane makes a kernel match a Desired.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Mapping

from .. import model
from . import chains as ch
from . import names as n
from .validate import canonical_mac, endpoint_issues, profile_issues

DEFAULT_MAX_IPSET_SIZE = 1 << 20
_PREFIX_RE = re.compile(r"^[a-zA-Z0-9_-]{1,14}$")
_TRUE = {"true", "yes", "y", "t", "1", "on"}
_FALSE = {"false", "no", "n", "f", "0", "off"}


# -- configuration (spec §1.9) --------------------------------------------------------------
@dataclass(frozen=True)
class FelixConfig:
    iface_prefix: str = "cali"
    default_endpoint_to_host_action: str = "DROP"
    ipip_enabled: bool = False
    ipip_mtu: int = 1440
    ipip_tunnel_addr: str | None = None
    mark_mask: int = 0xff000000
    max_ipset_size: int = DEFAULT_MAX_IPSET_SIZE
    drop_action_override: str = "DROP"
    ignore_loose_rpf: bool = False
    metadata_addr: str | None = None
    metadata_port: int = 8775
    failsafe_in: tuple[int, ...] = (22,)
    failsafe_out: tuple[int, ...] = (2379, 2380, 4001, 7001)
    iptables_refresh_interval: float = 60.0
    reporting_interval: int = 30          # Felix's status reports in etcd; 0: none (calicoctl's)
    reporting_ttl: int = 90

    @classmethod
    def from_snapshot(cls, snap: model.Snapshot, hostname: str,
                      overrides: Mapping[str, str] | None = None) -> tuple["FelixConfig", list[str]]:
        """Global config, overridden per host, overridden by `overrides` (FELIX_<NAME> env).
        A bad value is reported and replaced by the default (real Felix would refuse to start)."""
        warnings: list[str] = []
        overrides = {k.lower(): v for k, v in (overrides or {}).items()}

        def raw(name):
            if name.lower() in overrides:
                return overrides[name.lower()]
            return snap.config_value(name, hostname)

        def pick(name, default, parse):
            value = raw(name)
            if value is None:
                return default
            try:
                return parse(str(value).strip())
            except (ValueError, TypeError) as exc:
                warnings.append(f"config {name}={value!r} ignored ({exc}); using {default!r}")
                return default

        def choice(*allowed):
            def parse(v):
                for a in allowed:
                    if v.upper() == a.upper():
                        return a
                raise ValueError(f"not one of {', '.join(allowed)}")
            return parse

        def boolean(v):
            if v.lower() in _TRUE:
                return True
            if v.lower() in _FALSE:
                return False
            raise ValueError("not a boolean")

        def positive_int(v):
            i = int(v, 0)
            if i <= 0:
                raise ValueError("must be positive")
            return i

        def non_negative_int(v):
            i = int(v, 0)
            if i < 0:
                raise ValueError("must not be negative")
            return i

        def ipv4_or_none(v):
            if v == "" or v.lower() == "none":
                return None
            return str(ipaddress.IPv4Address(v))

        def prefix(v):
            if not _PREFIX_RE.match(v):
                raise ValueError("not an interface prefix")
            return v

        def mask(v):
            m = int(v, 0)
            n.mark_bits(m)
            return m

        def ports(v):
            out = tuple(int(p) for p in v.split(",") if p.strip() != "")
            if any(not 0 < p < 65536 for p in out):
                raise ValueError("port out of range")
            return out

        d = cls()
        cfg = cls(
            iface_prefix=pick("InterfacePrefix", d.iface_prefix, prefix),
            default_endpoint_to_host_action=pick("DefaultEndpointToHostAction",
                                                 d.default_endpoint_to_host_action,
                                                 choice("DROP", "RETURN", "ACCEPT")),
            ipip_enabled=pick("IpInIpEnabled", d.ipip_enabled, boolean),
            ipip_mtu=pick("IpInIpMtu", d.ipip_mtu, positive_int),
            ipip_tunnel_addr=pick("IpInIpTunnelAddr", d.ipip_tunnel_addr, ipv4_or_none),
            mark_mask=pick("IptablesMarkMask", d.mark_mask, mask),
            max_ipset_size=pick("MaxIpsetSize", d.max_ipset_size, positive_int),
            drop_action_override=pick("DropActionOverride", d.drop_action_override,
                                      choice("DROP", "ACCEPT", "LOG-and-DROP", "LOG-and-ACCEPT")),
            ignore_loose_rpf=pick("IgnoreLooseRPF", d.ignore_loose_rpf, boolean),
            metadata_addr=pick("MetadataAddr", d.metadata_addr, ipv4_or_none),
            metadata_port=pick("MetadataPort", d.metadata_port, positive_int),
            failsafe_in=pick("FailsafeInboundHostPorts", d.failsafe_in, ports),
            failsafe_out=pick("FailsafeOutboundHostPorts", d.failsafe_out, ports),
            iptables_refresh_interval=pick("IptablesRefreshInterval", d.iptables_refresh_interval,
                                           lambda v: float(int(v, 0))),
            reporting_interval=pick("ReportingIntervalSecs", d.reporting_interval, non_negative_int),
            reporting_ttl=pick("ReportingTTLSecs", d.reporting_ttl, positive_int),
        )
        return cfg, warnings

    def chain_config(self) -> ch.ChainConfig:
        accept, next_tier = n.mark_bits(self.mark_mask)
        return ch.ChainConfig(iface_prefix=self.iface_prefix, mark_accept=accept,
                              mark_next_tier=next_tier, drop_action=self.drop_action_override,
                              default_input_action=self.default_endpoint_to_host_action,
                              metadata_addr=self.metadata_addr, metadata_port=self.metadata_port,
                              failsafe_in=self.failsafe_in, failsafe_out=self.failsafe_out)


# -- the desired state ----------------------------------------------------------------------
@dataclass(frozen=True)
class LocalEndpoint:
    endpoint_id: str
    iface: str
    mac: str | None                   # canonical lower-case colon form
    ipv4_addrs: tuple[str, ...]
    profile_ids: tuple[str, ...]

    @property
    def routes(self) -> tuple[str, ...]:
        """Destinations of `ip route replace <dst> dev <iface> scope link`."""
        return tuple(f"{ip}/32" for ip in self.ipv4_addrs)

    @property
    def sysctls(self) -> tuple[tuple[str, str], ...]:
        """(path under /proc/sys, value), spec §5.2."""
        i = self.iface
        return ((f"net/ipv4/conf/{i}/rp_filter", "1"),
                (f"net/ipv4/conf/{i}/route_localnet", "1"),
                (f"net/ipv4/conf/{i}/proxy_arp", "1"),
                (f"net/ipv4/neigh/{i}/proxy_delay", "0"))


@dataclass(frozen=True)
class IpsetSpec:
    name: str
    set_type: str                      # hash:ip | hash:net
    members: frozenset[str]
    maxelem: int = DEFAULT_MAX_IPSET_SIZE
    family: str = "inet"

    @property
    def tmp_name(self) -> str:
        return n.tmp_ipset_name(self.name)


@dataclass(frozen=True)
class Tunnel:
    mtu: int = 1440
    address: str | None = None
    name: str = n.IPIP_DEVICE


@dataclass(frozen=True)
class Desired:
    hostname: str
    config: FelixConfig
    filter_chains: tuple[tuple[str, tuple[str, ...]], ...]
    nat_chains: tuple[tuple[str, tuple[str, ...]], ...]
    filter_inserts: tuple[tuple[str, str], ...]     # (kernel chain, rule spec), top-down
    nat_inserts: tuple[tuple[str, str], ...]
    ipsets: tuple[IpsetSpec, ...]
    endpoints: tuple[LocalEndpoint, ...]
    tunnel: Tunnel | None = None
    global_sysctls: tuple[tuple[str, str], ...] = (("net/ipv4/conf/default/rp_filter", "1"),)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def filter_restore(self) -> str:
        return ch.restore_text("filter", self.filter_chains)

    @property
    def nat_restore(self) -> str:
        return ch.restore_text("nat", self.nat_chains)

    def chain(self, name: str) -> tuple[str, ...]:
        for chains in (self.filter_chains, self.nat_chains):
            for chain_name, fragments in chains:
                if chain_name == name:
                    return fragments
        raise KeyError(name)

    def chain_names(self, table: str = "filter") -> tuple[str, ...]:
        chains = self.filter_chains if table == "filter" else self.nat_chains
        return tuple(name for name, _ in chains)

    def ipset(self, name: str) -> IpsetSpec:
        for s in self.ipsets:
            if s.name == name:
                return s
        raise KeyError(name)


def _valid_endpoints(snap: model.Snapshot, hostname: str, prefix: str, warnings: list[str]):
    for ep in snap.endpoints:
        issues = endpoint_issues(ep, ep.hostname == hostname, prefix)
        if issues:
            warnings.append(f"endpoint {ep.hostname}/{ep.endpoint_id} ignored: {' '.join(issues)}")
            continue
        yield ep


def _v4(addrs) -> tuple[str, ...]:
    out = []
    for a in addrs:
        ip = str(ipaddress.ip_interface(a).ip)
        if ip not in out:
            out.append(ip)
    return tuple(out)


def render(snapshot: model.Snapshot, hostname: str,
           overrides: Mapping[str, str] | None = None) -> Desired:
    cfg, warnings = FelixConfig.from_snapshot(snapshot, hostname, overrides)
    ccfg = cfg.chain_config()
    prefix = cfg.iface_prefix

    endpoints = list(_valid_endpoints(snapshot, hostname, prefix, warnings))

    # local, active endpoints get interfaces, chains and routes
    local: dict[str, LocalEndpoint] = {}
    for ep in sorted((e for e in endpoints if e.hostname == hostname and e.state == "active"),
                     key=lambda e: (e.name, e.endpoint_id)):
        if ep.name in local:
            warnings.append(f"endpoint {ep.endpoint_id} ignored: interface {ep.name} already "
                            f"belongs to endpoint {local[ep.name].endpoint_id}")
            continue
        local[ep.name] = LocalEndpoint(endpoint_id=ep.endpoint_id, iface=ep.name,
                                       mac=canonical_mac(ep.mac) if ep.mac else None,
                                       ipv4_addrs=_v4(ep.ipv4_nets),
                                       profile_ids=tuple(ep.profile_ids))
    local_eps = tuple(local[k] for k in sorted(local))

    # profile chains: one pair per profile used by a local endpoint (missing or invalid: a
    # single DROP, as Felix's stub for a referenced chain it does not have)
    profiles = {p.name: p for p in snapshot.profiles}
    used_profiles = sorted({pid for ep in local_eps for pid in ep.profile_ids})
    profile_chains: dict[str, list[str]] = {}
    referenced_tags: set[str] = set()
    for pid in used_profiles:
        prof = profiles.get(pid)
        inbound = outbound = None                 # None: Felix's "missing chain" DROP stub
        if prof is None:
            warnings.append(f"profile {pid} used by a local endpoint does not exist")
        else:
            issues = profile_issues(prof.inbound, prof.outbound)
            if issues:
                warnings.append(f"profile {pid} rules invalid, treated as missing: "
                                + "; ".join(issues))
            else:
                inbound, outbound = prof.inbound, prof.outbound
        for direction, rules in (("inbound", inbound), ("outbound", outbound)):
            name, fragments, tags = ch.profile_chain(ccfg, pid, rules, direction)
            profile_chains[name] = fragments
            referenced_tags |= tags

    # ipsets
    ipsets: list[IpsetSpec] = []
    tag_members: dict[str, set[str]] = {t: set() for t in referenced_tags}
    profile_tags = {p.name: set(p.tags) for p in snapshot.profiles}
    for ep in endpoints:
        carried = set().union(*(profile_tags.get(pid, set()) for pid in ep.profile_ids)) \
            if ep.profile_ids else set()
        for tag in carried & referenced_tags:
            tag_members[tag].update(_v4(ep.ipv4_nets))
    for tag in sorted(tag_members):
        ipsets.append(IpsetSpec(n.tag_ipset_name(tag), "hash:ip", frozenset(tag_members[tag]),
                                cfg.max_ipset_size))
    hosts_set = None
    if cfg.ipip_enabled:
        hosts_set = n.HOSTS_IPSET_V4
        members = set()
        for h in snapshot.hosts:
            try:
                members.add(str(ipaddress.IPv4Address(h.bird_ip)))
            except (ValueError, TypeError):
                pass
        ipsets.append(IpsetSpec(hosts_set, "hash:ip", frozenset(members), cfg.max_ipset_size))
    masq = any(p.masquerade for p in snapshot.pools)
    if masq:
        all_pools, masq_pools = set(), set()
        for p in snapshot.pools:
            try:
                cidr = str(ipaddress.IPv4Network(p.cidr, strict=False))
            except (ValueError, TypeError):
                warnings.append(f"pool {p.cidr!r} ignored: not an IPv4 CIDR")
                continue
            all_pools.add(cidr)
            if p.masquerade:
                masq_pools.add(cidr)
        ipsets.append(IpsetSpec(n.ALL_POOLS_IPSET, "hash:net", frozenset(all_pools),
                                cfg.max_ipset_size))
        ipsets.append(IpsetSpec(n.MASQ_POOLS_IPSET, "hash:net", frozenset(masq_pools),
                                cfg.max_ipset_size))

    # filter table
    filter_chains: dict[str, list[str]] = {
        n.CHAIN_INPUT: ch.input_chain(ccfg, hosts_set),
        n.CHAIN_OUTPUT: ch.output_chain(ccfg),
        n.CHAIN_FORWARD: ch.forward_chain(ccfg),
    }
    filter_chains.update(ch.failsafe_chains(ccfg))
    filter_chains.update(ch.host_dispatch_chains())
    dispatch = ch.workload_dispatch_chains(ccfg, [ep.iface for ep in local_eps])
    filter_chains[n.CHAIN_FROM_ENDPOINT] = dispatch.pop(n.CHAIN_FROM_ENDPOINT)
    filter_chains[n.CHAIN_TO_ENDPOINT] = dispatch.pop(n.CHAIN_TO_ENDPOINT)
    for leaf in sorted(dispatch):
        filter_chains[leaf] = dispatch[leaf]
    for ep in local_eps:
        from_chain = n.from_chain_name(ep.iface, prefix)
        to_chain = n.to_chain_name(ep.iface, prefix)
        filter_chains[from_chain] = ch.endpoint_chain(ccfg, from_chain, ep.endpoint_id,
                                                      ep.profile_ids, "outbound", ep.mac)
        filter_chains[to_chain] = ch.endpoint_chain(ccfg, to_chain, ep.endpoint_id,
                                                    ep.profile_ids, "inbound")
    for name in sorted(profile_chains):
        filter_chains[name] = profile_chains[name]

    filter_inserts = (("INPUT", f"--jump {n.CHAIN_INPUT}"),
                      ("OUTPUT", f"--jump {n.CHAIN_OUTPUT}"),
                      ("FORWARD", f"--jump {n.CHAIN_FORWARD}"))

    # nat table
    nat = ch.nat_chains(ccfg)
    nat_inserts = [("PREROUTING", f"--jump {n.CHAIN_PREROUTING}"),
                   ("POSTROUTING", f"--jump {n.CHAIN_POSTROUTING}")]
    if masq:
        nat_inserts.append(("POSTROUTING", ch.MASQ_RULE))
    tunnel = None
    if cfg.ipip_enabled:
        tunnel = Tunnel(mtu=cfg.ipip_mtu, address=cfg.ipip_tunnel_addr)
        if cfg.ipip_tunnel_addr:
            nat_inserts.append(("POSTROUTING", ch.IPIP_MASQ_RULE))

    return Desired(
        hostname=hostname,
        config=cfg,
        filter_chains=tuple((k, tuple(v)) for k, v in filter_chains.items()),
        nat_chains=tuple((k, tuple(v)) for k, v in nat.items()),
        filter_inserts=filter_inserts,
        nat_inserts=tuple(nat_inserts),
        ipsets=tuple(ipsets),
        endpoints=local_eps,
        tunnel=tunnel,
        warnings=tuple(warnings),
    )

