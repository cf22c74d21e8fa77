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
BIRD_CTL, BIRD6_CTL = "/var/run/calico/bird.ctl", "/var/run/calico/bird6.ctl"


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
    as_num = asn or ds.get_default_as()
    for version, ip, ctl in ((4, v4, BIRD_CTL), (6, v6, BIRD6_CTL)):
        output = _birdc_protocols(ctl) if ip else None
        print("\n".join(bird_status.bgp_status_lines(version, ip, as_num, not asn, output)))
    return 0


def _birdc_protocols(ctl: str) -> str | None:
    """`show protocols` from BIRD's control socket; None when BIRD cannot be reached."""
    try:
        cp = subprocess.run(["birdc", "-s", ctl, "show", "protocols"], capture_output=True,
                            text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if cp.returncode != 0 or "Unable to connect" in cp.stdout + cp.stderr:
        return None
    return cp.stdout
