"""
Usage:
  calicoctl pool (add|remove) <CIDRS>... [--ipip] [--nat-outgoing]
  calicoctl pool range add <START_IP> <END_IP> [--ipip] [--nat-outgoing]
  calicoctl pool show [--ipv4 | --ipv6]

Description:
  Configure IP Pools

Options:
  --ipv4          Show IPv4 information only
  --ipv6          Show IPv6 information only
  --nat-outgoing  Apply NAT to outgoing traffic
  --ipip          Use IP-over-IP encapsulation across hosts
"""
from __future__ import annotations

import ipaddress
import time

from ..ipam import Ipam
from ..model import Pool
from ..table import table
from .common import datastore, fail

MAX_PREFIX = {4: 26, 6: 122}      # a pool must hold at least one IPAM block


def run(args) -> int:
    if args["show"]:
        return show(args["--ipv4"], args["--ipv6"])
    if args["range"]:
        return range_add(args["<START_IP>"], args["<END_IP>"], args["--ipip"], args["--nat-outgoing"])
    if args["add"]:
        return add([_network(c) for c in args["<CIDRS>"]], args["--ipip"], args["--nat-outgoing"])
    return remove([_network(c) for c in args["<CIDRS>"]])


def _network(text: str):
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        fail(f"{text} is not a valid IP network.")


def add(networks, ipip: bool, nat: bool) -> int:
    version = networks[0].version
    if any(n.version != version for n in networks):
        fail("All CIDRs must be of the same IP version.")
    if ipip and version == 6:
        fail("IP in IP not supported for IPv6 pools")
    for n in networks:
        if n.prefixlen > MAX_PREFIX[version]:
            fail(f"An IPv{version} pool must have a prefix length of {MAX_PREFIX[version]} or lower."
                 f"\nGiven: {n}.\nNo pools added.")
    ds = datastore()
    existing = [ipaddress.ip_network(p.cidr) for p in ds.pools(version)]
    for i, n in enumerate(networks):
        # re-adding the identical CIDR is how options are changed; any other overlap is refused
        others = [e for e in existing if e != n] + [m for m in networks[:i] if m != n]
        clash = next((o for o in others if o.overlaps(n)), None)
        if clash is not None:
            fail(f"Cannot add IP pool {n} - pool overlaps with an existing pool {clash}")
    for n in networks:
        ds.add_pool(Pool(cidr=str(n), ipip=ipip, masquerade=nat))
    return 0


def range_add(start: str, end: str, ipip: bool, nat: bool) -> int:
    try:
        first, last = ipaddress.ip_address(start), ipaddress.ip_address(end)
        networks = list(ipaddress.summarize_address_range(first, last))
    except (ValueError, TypeError):
        fail("Invalid IP range specified.")
    return add(networks, ipip, nat)


def remove(networks) -> int:
    ds = datastore()
    pools = {ipaddress.ip_network(p.cidr): p for v in (4, 6) for p in ds.pools(v)}
    for n in networks:
        if n not in pools:
            fail(f"{n} is not a configured pool.")
    for n in networks:
        pool = pools[n]
        print("Disabling IP Pool")
        ds.add_pool(Pool(pool.cidr, pool.ipip, pool.masquerade, pool.ipam, disabled=True))
        time.sleep(3)   # as calicoctl did: let in-flight assignments finish
        print("Removing IPAM configuration for pool")
        Ipam(ds).release_pool_affinities(pool.cidr)
        ds.remove_pool(pool.cidr)
        print("Deleted IP Pool")
    return 0


def show(v4_only: bool, v6_only: bool) -> int:
    ds = datastore()
    for version in (4, 6):
        if (version == 4 and v6_only) or (version == 6 and v4_only):
            continue
        rows = []
        for p in ds.pools(version):
            options = [o for o, on in (("ipip", p.ipip), ("nat-outgoing", p.masquerade)) if on]
            rows.append([p.cidr, ",".join(options)])
        print(table([f"IPv{version} CIDR", "Options"], sorted(rows, key=lambda r: r[0])))
    return 0
