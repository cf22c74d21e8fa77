"""
Usage:
  calicoctl status [--runtime=<RUNTIME>]

Description:
  Print current status information regarding calico-node container
  and the BIRD routing daemon.

Options:
  --runtime=<RUNTIME>       Specify the runtime used to run the calico/node
                            container, either "docker" or "rkt".
                            [default: docker]
"""
from __future__ import annotations

import subprocess

from ..bird import status as bird_status
from .common import datastore, docker_client, fail, hostname

FELIX_VERSION = "1.4.1b2"
BIRD_CTL = "/var/run/calico/bird.ctl"


def run(args) -> int:
    client = docker_client()
    running = [c for c in client.api.containers() if "/calico-node" in c.get("Names", [])]
    client.close()
    if not running:
        fail("calico-node container not running")
    print(f"calico-node container is running. Status: {running[0]['Status']}")
    print(f"Running felix version {FELIX_VERSION}")
    print()
    ds, host = datastore(), hostname()
    v4, v6, asn = ds.host_bgp(host)
    as_text = asn or f"{ds.get_default_as()} (inherited)"
    print("IPv4 BGP status")
    if v4:
        print(f"IP: {v4}    AS Number: {as_text}")
        print(_bgp_table(BIRD_CTL))
    else:
        print("No IPv4 address configured.")
    print()
    print("IPv6 BGP status")
    if v6:
        print(f"IP: {v6}    AS Number: {as_text}")
        print(_bgp_table("/var/run/calico/bird6.ctl"))
    else:
        print("No IPv6 address configured.")
    return 0


def _bgp_table(ctl: str) -> str:
    try:
        cp = subprocess.run(["birdc", "-s", ctl, "show", "protocols"], capture_output=True,
                            text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "Couldn't connect to bird."
    if cp.returncode != 0 or "Unable to connect" in cp.stdout + cp.stderr:
        return "Couldn't connect to bird."
    return bird_status.bgp_table(cp.stdout, ipv6=ctl.endswith("bird6.ctl"))
