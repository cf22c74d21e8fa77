"""
Usage:
  calicoctl ipam release <IP>
  calicoctl ipam info <IP>

Description:
  Manage Calico assigned IP addresses

Warnings:
  -  Releasing an in-use IP address can result in it being assigned to multiple
     workloads.
"""
from __future__ import annotations

from ..ipam import Ipam
from .common import datastore, fail, parse_ip


def run(args) -> int:
    ip = parse_ip(args["<IP>"])
    if ip is None:
        fail("Invalid IP address specified.")
    ipam = Ipam(datastore())
    if args["release"]:
        if ipam.release_ips([str(ip)]):
            fail("Address was not allocated.")
        print("Address successfully released")
        return 0
    attributes = ipam.get_assignment_attributes(str(ip))
    if attributes is None:
        fail(f"{ip} is not currently assigned")
    handle_id, secondary = attributes
    print(f"IP {ip} is assigned")
    print(f"  handle: {handle_id}")
    print(f"  attributes: {secondary}")
    return 0
