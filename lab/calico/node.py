"""The calico/node container's entry point: startup.py, then runit-like service supervision.

Startup (spec §0.3) registers the host in etcd and prints "Calico node started successfully"
(calicoctl waits for that line); then Felix, confd+BIRD and the IPIP address allocator run
as child processes, each restarted if it dies, as runit did.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

from .datastore import Datastore, DatastoreError
from .ipam import Ipam, NoAddressesError
from .model import Pool

DEFAULT_POOL_V4 = "192.168.0.0/16"
DEFAULT_POOL_V6 = "fd80:24e2:f998:72d6::/64"
SKIP_IFACES = re.compile(r"^(docker|cbr|virbr|lxcbr|veth|cali|tunl|flannel)")
STARTED = "Calico node started successfully"


def log(message: str) -> None:
    print(message, flush=True)


# -- startup.py -------------------------------------------------------------------------------

def detect_ipv4() -> str | None:
    out = subprocess.run(["ip", "-j", "-4", "addr", "show"], capture_output=True, text=True).stdout
    for link in json.loads(out or "[]"):
        if link.get("ifname") == "lo" or SKIP_IFACES.match(link.get("ifname", "")):
            continue
        for addr in link.get("addr_info", []):
            if addr.get("family") == "inet":
                return addr["local"]
    return None


def connect(env) -> Datastore:
    """etcd, waiting for it when WAIT_FOR_DATASTORE=true (calico/node v0.22)."""
    while True:
        try:
            ds = Datastore.from_env(env)
            ds.get_default_as()
            return ds
        except DatastoreError as exc:
            if env.get("WAIT_FOR_DATASTORE", "").lower() != "true":
                raise
            log(f"Waiting for etcd connection... ({exc})")
            time.sleep(1)


def startup(env) -> tuple[Datastore, str, str]:
    hostname = env.get("HOSTNAME") or os.uname().nodename
    ip, ip6, asn = env.get("IP", ""), env.get("IP6", ""), env.get("AS", "")
    ds = connect(env)
    if not ip:
        ip = detect_ipv4() or ""
        if not ip:
            raise SystemExit("Couldn't autodetect a management IP address. Please provide an "
                             "IP address by rerunning the container with the IP environment variable set.")
        log(f"No IP provided. Using detected IP: {ip}")
    try:
        ipaddress.IPv4Address(ip)
    except ValueError:
        raise SystemExit(f"IP environment ({ip}) is not a valid IPv4 address.")
    owner = ds.hostname_for_ip(ip)
    if owner is not None and owner != hostname:
        raise SystemExit(f"Calico node '{owner}' is already using the IPv4 address {ip}.\n"
                         "Calico node failed to start")
    previous = ds.host_bgp(hostname)[0]
    if previous and previous != ip:
        log(f"WARNING: Hostname '{hostname}' was previously used with IP address {previous}: "
            f"it will be updated to {ip}.")
    if env.get("NO_DEFAULT_POOLS", "").lower() != "true":
        if not ds.pools(4):
            ds.add_pool(Pool(DEFAULT_POOL_V4))
        if not ds.pools(6) and os.path.exists("/proc/sys/net/ipv6"):
            ds.add_pool(Pool(DEFAULT_POOL_V6))
    ds.ensure_global_config()
    ds.create_host(hostname, ip, ip6 or None, asn or None)
    ensure_tunnel_address(ds, hostname)
    return ds, hostname, ip


def ensure_tunnel_address(ds: Datastore, hostname: str) -> None:
    """allocate-ipip-addr.py: a host tunnel address while any IPIP pool exists, none otherwise."""
    ipip_pools = [p for p in ds.pools(4) if p.ipip and p.ipam and not p.disabled]
    current = ds.get_config("IpInIpTunnelAddr", hostname=hostname)
    in_pool = current and any(ipaddress.ip_address(current) in p.network for p in ipip_pools)
    if ipip_pools and not in_pool:
        ipam = Ipam(ds)
        if current:
            ipam.release_ips([current])
        for pool in ipip_pools:
            try:
                addr = ipam.auto_assign(hostname, 1, pool_cidrs=[pool.cidr])[0]
            except NoAddressesError:
                continue
            ds.set_config("IpInIpTunnelAddr", addr, hostname=hostname)
            return
    elif not ipip_pools and current:
        Ipam(ds).release_ips([current])
        ds.set_config("IpInIpTunnelAddr", None, hostname=hostname)


# -- runit ------------------------------------------------------------------------------------

class Service:
    """A child process kept running, restarted a second after it exits."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name, self.argv, self.proc = name, argv, None

    def poll(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                log(f"runsv: {self.name} exited ({self.proc.returncode}); restarting")
                time.sleep(1)
            self.proc = subprocess.Popen(self.argv, start_new_session=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def tunnel_watch(ds: Datastore, hostname: str, stop: threading.Event) -> None:
    """confd's tunl-ip template: re-run the allocation whenever the datastore changes."""
    index = ds.snapshot().etcd_index
    while not stop.is_set():
        try:
            new = ds.wait_for_change(index, timeout=10)
            if new != index:
                index = ds.snapshot().etcd_index
                ensure_tunnel_address(ds, hostname)
        except Exception as exc:   # never let the allocator take the node down
            log(f"allocate-ipip-addr: {exc}")
            time.sleep(1)


def main() -> int:
    env = dict(os.environ)
    try:
        ds, hostname, ip = startup(env)
    except (DatastoreError, SystemExit) as exc:
        log(str(exc) if str(exc) else "Calico node failed to start")
        return 1
    env.update(HOSTNAME=hostname, IP=ip, FELIX_FELIXHOSTNAME=hostname)
    py = sys.executable
    services = [Service("felix", [py, "-m", "lab.calico.felix"])]
    if env.get("CALICO_NETWORKING", "true").lower() != "false":
        services.append(Service("confd", [py, "-m", "lab.calico.bird"]))
    os.environ.update(env)
    log(STARTED)
    stop = threading.Event()
    threading.Thread(target=tunnel_watch, args=(ds, hostname, stop), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set():
        for s in services:
            s.poll()
        stop.wait(0.5)
    for s in services:
        s.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
