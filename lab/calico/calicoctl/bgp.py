"""
Usage:
  calicoctl bgp peer add <PEER_IP> as <AS_NUM>
  calicoctl bgp peer remove <PEER_IP>
  calicoctl bgp peer show [--ipv4 | --ipv6]
  calicoctl bgp node-mesh [on|off]
  calicoctl bgp default-node-as [<AS_NUM>]

Description:
  Configure default global BGP settings for all nodes. Note: per-node settings
  will override these globals for that node.

Options:
 --ipv4    Show IPv4 information only.
 --ipv6    Show IPv6 information only.
"""
from __future__ import annotations

from ..table import table
from .common import datastore, fail, parse_ip, validate_asn


def run(args) -> int:
    ds = datastore()
    if args["peer"]:
        if args["add"]:
            ip, asn = checked_peer(args["<PEER_IP>"], args["<AS_NUM>"])
            ds.add_global_peer(ip, asn)
        elif args["remove"]:
            ip = checked_ip(args["<PEER_IP>"])
            if ip not in [p.ip for p in ds.global_peers()]:
                fail(f"{ip} is not a globally configured peer.")
            ds.remove_global_peer(ip)
            print("BGP peer removed from global configuration")
        else:
            show_peers(ds.global_peers(), args["--ipv4"], args["--ipv6"],
                       "Global IPv{v} BGP Peer", "No global IPv{v} BGP Peers defined.\n")
    elif args["node-mesh"]:
        if args["on"] or args["off"]:
            ds.set_node_mesh(bool(args["on"]))
        else:
            print("on" if ds.get_node_mesh() else "off")
    elif args["default-node-as"]:
        if args["<AS_NUM>"] is not None:
            asn = validate_asn(args["<AS_NUM>"])
            if asn is None:
                fail("Invalid AS Number specified.")
            ds.set_default_as(asn)
        else:
            print(ds.get_default_as())
    return 0


def checked_ip(text: str) -> str:
    ip = parse_ip(text)
    if ip is None:
        fail(f"Invalid IP address specified: {text}")
    return str(ip)


def checked_peer(ip_text: str, asn_text: str) -> tuple[str, str]:
    ip = checked_ip(ip_text)
    asn = validate_asn(asn_text)
    if asn is None:
        fail("Invalid AS Number specified.")
    return ip, asn


def show_peers(peers, v4_only: bool, v6_only: bool, heading: str, empty: str) -> None:
    """One left-aligned table per IP version, or its 'none defined' line (spec §3.2, §3.6)."""
    for v in (4, 6):
        if (v == 4 and v6_only) or (v == 6 and v4_only):
            continue
        rows = sorted(([p.ip, p.as_num] for p in peers if parse_ip(p.ip, v) is not None),
                      key=lambda r: r[0])
        if rows:
            print(table([heading.format(v=v), "AS Num"], rows, align="l"))
        else:
            print(empty.format(v=v))
