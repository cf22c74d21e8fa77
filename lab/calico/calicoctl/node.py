"""
Usage:
  calicoctl node [--ip=<IP>] [--ip6=<IP6>] [--node-image=<DOCKER_IMAGE_NAME>]
    [--runtime=<RUNTIME>] [--as=<AS_NUM>] [--log-dir=<LOG_DIR>]
    [--detach=<DETACH>] [--no-pull]
    [(--libnetwork [--libnetwork-image=<LIBNETWORK_IMAGE_NAME>])]
  calicoctl node stop [--force]
  calicoctl node remove [--hostname=<HOSTNAME>] [--remove-endpoints]
  calicoctl node show
  calicoctl node bgp peer add <PEER_IP> as <AS_NUM>
  calicoctl node bgp peer remove <PEER_IP>
  calicoctl node bgp peer show [--ipv4 | --ipv6]

Description:
  Configure the Calico node containers as well as default BGP information
  for this node.

Options:
  --as=<AS_NUM>             The default AS number for this node.
  --detach=<DETACH>         Set "true" to run Calico service as detached,
                            "false" to run in the foreground.  When using
                            libnetwork, this may not be set to "false".
                            [default: true]
  --force                   Stop the Calico node even if there are still
                            containers using Calico networking.
  --hostname=<HOSTNAME>     The hostname from which to remove the Calico node.
  --ip=<IP>                 The local management address to use.
  --ip6=<IP6>               The local IPv6 management address to use.
  --ipv4                    Show IPv4 information only.
  --ipv6                    Show IPv6 information only.
  --libnetwork              Use the libnetwork plugin.
  --libnetwork-image=<LIBNETWORK_IMAGE_NAME>    Docker image to use for
                            Calico's libnetwork driver.
                            [default: calico/node-libnetwork:v0.9.0]
  --log-dir=<LOG_DIR>       The directory for logs [default: /var/log/calico]
  --no-pull                 Prevent from pulling the Calico node Docker images.
  --node-image=<DOCKER_IMAGE_NAME>    Docker image to use for
                            Calico's per-node container.
                            [default: calico/node:v0.22.0]
  --remove-endpoints        Remove the endpoint data when deleting the node
                            from the Calico network.
  --runtime=<RUNTIME>       Specify how Calico services should be
                            launched.  When set to "docker", services
                            will be launched via the calico-node container,
                            whereas a value of "none" will not launch them at
                            all. [default: docker]
"""
from __future__ import annotations

import json
import os
import subprocess
import time

from .. import image
from ..ipam import Ipam
from ..table import table
from .bgp import checked_peer, checked_ip, show_peers
from .common import datastore, docker_client, fail, hostname, parse_ip, validate_asn

NODE_CONTAINER, LIBNETWORK_CONTAINER = "calico-node", "calico-libnetwork"
STARTED = "Calico node started successfully"
ETCD_ENV = ("ETCD_AUTHORITY", "ETCD_SCHEME", "ETCD_ENDPOINTS", "ETCD_CA_CERT_FILE",
            "ETCD_CERT_FILE", "ETCD_KEY_FILE")


def run(args) -> int:
    if args["bgp"]:
        return bgp_peer(args)
    if args["stop"]:
        return stop(args["--force"])
    if args["remove"]:
        return remove(args["--hostname"] or hostname(), args["--remove-endpoints"])
    if args["show"]:
        return show()
    return start(args)


# -- calicoctl node ---------------------------------------------------------------------------

def start(args) -> int:
    if os.geteuid() != 0:
        fail("This command must be run as root.")
    ip, ip6, asn = args["--ip"], args["--ip6"], args["--as"]
    if ip and parse_ip(ip, 4) is None:
        fail(f"IP address {ip} is not a valid IPv4 address.")
    if ip6 and parse_ip(ip6, 6) is None:
        fail(f"IP address {ip6} is not a valid IPv6 address.")
    if asn is not None:
        asn = validate_asn(asn)
        if asn is None:
            fail("Invalid AS Number specified.")
    if args["--libnetwork"] and args["--detach"] != "true":
        fail("The only valid value for --detach when using libnetwork is 'true'.")
    if ip and ip not in _local_ipv4():
        print("WARNING: Could not confirm that the provided IPv4 address is assigned to this host.")
    _enable_forwarding()
    ds = datastore()
    ds.get_default_as()   # checksystem: etcd must answer before anything is started
    for d in (args["--log-dir"], "/var/run/calico"):
        os.makedirs(d, exist_ok=True)
    if args["--runtime"] == "none":
        return 0
    client = docker_client()
    env = {"HOSTNAME": hostname(), "IP": ip or "", "IP6": ip6 or "",
           "CALICO_NETWORKING": os.environ.get("CALICO_NETWORKING", "true"), "AS": asn or "",
           "NO_DEFAULT_POOLS": os.environ.get("NO_DEFAULT_POOLS", "")}
    env.update({k: os.environ[k] for k in ETCD_ENV if os.environ.get(k)})
    binds = {args["--log-dir"]: {"bind": "/var/log/calico", "mode": "rw"},
             "/var/run/calico": {"bind": "/var/run/calico", "mode": "rw"}}
    if os.path.isdir("/lib/modules"):
        binds["/lib/modules"] = {"bind": "/lib/modules", "mode": "ro"}
    node = _run_container(client, NODE_CONTAINER, args["--node-image"], env, binds)
    print(f"Calico node is running with id: {node.id}")
    print("Waiting for successful startup")
    _stream_until_started(node)
    if args["--libnetwork"]:
        lib_env = {"HOSTNAME": hostname(), **{k: os.environ[k] for k in ETCD_ENV if os.environ.get(k)}}
        lib_binds = {"/run/docker/plugins": {"bind": "/run/docker/plugins", "mode": "rw"}}
        os.makedirs("/run/docker/plugins", exist_ok=True)
        lib = _run_container(client, LIBNETWORK_CONTAINER, args["--libnetwork-image"], lib_env,
                             lib_binds, announce=False)
        print(f"Calico libnetwork driver is running with id: {lib.id}")
    client.close()
    return 0


def _local_ipv4() -> set[str]:
    out = subprocess.run(["ip", "-j", "-4", "addr", "show"], capture_output=True, text=True).stdout
    return {a["local"] for link in json.loads(out or "[]") for a in link.get("addr_info", [])}


def _enable_forwarding() -> None:
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1")
    try:   # calicoctl only warns here; inside a lab namespace the knob is read-only
        with open("/proc/sys/net/netfilter/nf_conntrack_max", "w") as f:
            f.write("1000000")
    except OSError:
        pass


def _run_container(client, name, image_name, env, binds, announce=True):
    from docker.errors import ImageNotFound
    try:
        client.images.get(image_name)
    except ImageNotFound:
        fail(f"Docker image {image_name} is not present on this host and no registry can be "
             "reached (the embedded lab imports it into every node at `python -m lab up`).")
    if announce:
        print("Running Docker container with the following command:\n")
        print(image.docker_run_line(name, image_name, env, binds) + "\n")
    return image.run_container(client, name, image_name, env, binds)


def _stream_until_started(container, timeout: float = 60) -> None:
    """Echo the container's output until its startup line, as calicoctl attached and waited."""
    deadline, shown = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        logs = container.logs().decode(errors="replace")
        new = logs[shown:]
        if new:
            print(new, end="")
            shown = len(logs)
        if STARTED in logs:
            return
        container.reload()
        if container.status in ("exited", "dead"):
            break
        time.sleep(0.1)
    fail("Calico node failed to start")


# -- stop / remove / show ---------------------------------------------------------------------

def stop(force: bool) -> int:
    ds = datastore()
    if not force and ds.endpoints(hostname()):
        fail("Current host has active endpoints so can't be stopped. Force with --force")
    client = docker_client()
    from docker.errors import NotFound
    for name in (NODE_CONTAINER, LIBNETWORK_CONTAINER):
        try:
            client.containers.get(name).stop(timeout=2)
        except NotFound:
            pass
    print("Node stopped")
    return 0


def remove(host: str, remove_endpoints: bool) -> int:
    ds = datastore()
    if host == hostname():
        client = docker_client()
        running = {c.name for c in client.containers.list()}
        if NODE_CONTAINER in running or LIBNETWORK_CONTAINER in running:
            fail("The node cannot be removed while it is running. "
                 "Please run 'calicoctl node stop' to stop the node first.")
    endpoints = ds.endpoints(host)
    if endpoints and not remove_endpoints:
        fail("The node has active Calico endpoints so can't be deleted. "
             "Force with --remove-endpoints")
    ipam = Ipam(ds)
    for ep in endpoints:
        if host == hostname():
            subprocess.run(["ip", "link", "delete", ep.name], capture_output=True)
        ipam.release_ips(list(ep.ipv4_addrs))
    tunnel = ds.get_config("IpInIpTunnelAddr", hostname=host)
    if tunnel:
        ipam.release_ips([tunnel])
    ipam.remove_ipam_host(host)   # IPAM keys, then the BGP and host trees (spec §3)
    ds.remove_host(host)
    print("Node configuration removed")
    return 0


def show() -> int:
    ds = datastore()
    rows, default_as = [], ds.get_default_as()
    for host in sorted(ds.hosts()):
        v4, v6, asn = ds.host_bgp(host)
        peers = ds.node_peers(host)
        peers4 = "\n".join(f"{p.ip} as {p.as_num}" for p in peers if parse_ip(p.ip, 4))
        peers6 = "\n".join(f"{p.ip} as {p.as_num}" for p in peers if parse_ip(p.ip, 6))
        rows.append([host, v4 or "", v6 or "", asn or f"{default_as} (inherited)", peers4, peers6])
    print(table(["Hostname", "Bird IPv4", "Bird IPv6", "AS Num", "BGP Peers v4", "BGP Peers v6"], rows))
    return 0


def bgp_peer(args) -> int:
    ds, host = datastore(), hostname()
    if args["add"]:
        ip, asn = checked_peer(args["<PEER_IP>"], args["<AS_NUM>"])
        ds.add_node_peer(host, ip, asn)
    elif args["remove"]:
        ip = checked_ip(args["<PEER_IP>"])
        if ip not in [p.ip for p in ds.node_peers(host)]:
            fail(f"{ip} is not a configured peer for this node.")
        ds.remove_node_peer(host, ip)
        print("BGP peer removed from node configuration")
    else:
        show_peers(ds.node_peers(host), args["--ipv4"], args["--ipv6"],
                   "Node specific IPv{v} BGP Peer", "No IPv{v} BGP Peers defined for this node.")
    return 0
