"""
Usage:
  calicoctl container <CONTAINER> ip (add|remove) <IP> [--interface=<INTERFACE>]
  calicoctl container <CONTAINER> endpoint show
  calicoctl container <CONTAINER> profile (append|remove|set) [<PROFILES>...]
  calicoctl container add <CONTAINER> <IP> [--interface=<INTERFACE>]
  calicoctl container remove <CONTAINER>

Description:
  Add or remove containers to Calico networking, manage their IP addresses and profiles.
  All these commands must be run on the host that contains the container.

Options:
  <IP>                     The IP address desired. If "ipv4", "ipv6", or a CIDR
                           is given, then Calico will attempt to automatically
                           assign an available IP address, IPv6 address, or
                           IP from any Pool matching the provided CIDR,
                           respectively. NOTE: When a CIDR is passed, it must
                           exactly match an existing Calico pool.
  --interface=<INTERFACE>  The name to give to the interface in the container
                           [default: eth1]
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import sys
import uuid
from typing import NoReturn

from ..datastore import Datastore, NotFound
from ..ipam import AlreadyAssignedError, Ipam, IpamError, NoAddressesError
from ..model import Endpoint
from . import containerns as netns
from . import endpoint
from .common import datastore, docker_client, enforce_root, hostname, paragraph

DOCKER, NAMESPACE = "docker", "namespace"        # orchestrator IDs of calicoctl's own workloads
INVALID_IP = "Invalid IP address specified.  Argument must be a valid IP or CIDR."


class DockerUnreachable(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class Workload:
    """What `<CONTAINER>` names: a Docker container (by name or ID) or a namespace file."""
    given: str
    orchestrator: str
    workload_id: str
    ns: netns.Namespace | None = None
    running: bool = True
    host_network: bool = False


# -- arguments ----------------------------------------------------------------------------------

def validate(args, ds: Datastore) -> None:
    ip = args.get("<IP>")
    if ip is not None:
        if ip.lower() not in ("ipv4", "ipv6") and _address(ip) is None and _cidr(ip) is None:
            paragraph(INVALID_IP)
            sys.exit(1)
        if "/" in ip and _exact_pool(ds, ip) is None:
            paragraph(f"Invalid CIDR specified for desired pool. No pool found for {ip}.")
            sys.exit(1)
    if args.get("--interface") and not netns.valid_interface(args["--interface"]):
        # not in 0.22, which passed any name on to `ip`
        paragraph(f"Invalid interface name specified: {args['--interface']}")
        sys.exit(1)
    endpoint.validate_profile_names(args.get("<PROFILES>") or [])


def _address(text: str):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _cidr(text: str):
    try:
        return ipaddress.ip_network(text, strict=False) if "/" in text else None
    except ValueError:
        return None


def _exact_pool(ds: Datastore, text: str):
    """The pool whose CIDR is exactly `text` (a host address with a prefix names no pool)."""
    net = _cidr(text)
    if net is None or str(net.network_address) != text.split("/")[0]:
        return None
    return next((p for p in ds.pools(net.version) if ipaddress.ip_network(p.cidr) == net), None)


# -- dispatch -----------------------------------------------------------------------------------

def run(args) -> int:
    ds = datastore()
    validate(args, ds)
    name, iface = args["<CONTAINER>"], args["--interface"]
    try:
        if args["ip"]:
            if args["add"]:
                return ip_add(ds, name, args["<IP>"], iface)
            return ip_remove(ds, name, args["<IP>"], iface)
        if args["endpoint"]:
            w = lookup(name)
            return endpoint.show(endpoint.Filters(hostname(), w.orchestrator, w.workload_id),
                                 detailed=True)
        if args["profile"]:
            w = lookup(name)
            f = endpoint.Filters(hostname(), w.orchestrator, w.workload_id)
            if args["append"]:
                return endpoint.profile_append(f, args["<PROFILES>"])
            if args["remove"]:
                return endpoint.profile_remove(f, args["<PROFILES>"])
            return endpoint.profile_set(f, args["<PROFILES>"])
        if args["add"]:
            return add(ds, name, args["<IP>"], iface)
        return remove(ds, name)
    except DockerUnreachable:
        paragraph("Unable to run docker commands. Is the docker daemon running?")
        sys.exit(1)


# -- finding the workload -----------------------------------------------------------------------

def _is_path(name: str) -> bool:
    return name.startswith("/") and os.path.exists(name)


def inspect(name: str) -> dict:
    """`docker inspect` of a name or ID fragment, or exit as calicoctl did."""
    import docker.errors
    import requests.exceptions
    try:
        client = docker_client(timeout=30)
    except (docker.errors.DockerException, requests.exceptions.ConnectionError) as exc:
        raise DockerUnreachable() from exc
    try:
        return client.api.inspect_container(name)
    except docker.errors.NotFound:
        print(f"Container {name} was not found.")
        sys.exit(1)
    except docker.errors.APIError as exc:
        print(exc.explanation or str(exc))
        sys.exit(1)
    except requests.exceptions.ConnectionError as exc:
        raise DockerUnreachable() from exc
    finally:
        client.close()


def lookup(name: str) -> Workload:
    if _is_path(name):
        # a namespace file: no Docker; the workload ID is the path with '/' escaped
        return Workload(name, NAMESPACE, name.replace("/", "-"), netns.Namespace(name))
    info = inspect(name)
    state = info.get("State") or {}
    return Workload(name, DOCKER, info["Id"], netns.Namespace.of_pid(int(state.get("Pid") or 0)),
                    running=bool(state.get("Running")),
                    host_network=(info.get("HostConfig") or {}).get("NetworkMode") == "host")


def _workload_endpoint(ds: Datastore, w: Workload) -> Endpoint:
    return endpoint.select_one(ds, endpoint.Filters(hostname(), w.orchestrator, w.workload_id))


# -- addresses ----------------------------------------------------------------------------------

def _pool_of(ds: Datastore, ip) -> str:
    pool = next((p for p in ds.pools(ip.version) if ip in ipaddress.ip_network(p.cidr)), None)
    if pool is None:
        print(f"{ip} is not in any configured pools")
        sys.exit(1)
    return pool.cidr


def _auto(ds: Datastore, version: int, pool_cidr: str | None = None):
    try:
        return ipaddress.ip_address(Ipam(ds).auto_assign(
            hostname(), 1, pool_cidrs=[pool_cidr] if pool_cidr else None, attributes={},
            version=version)[0])
    except NoAddressesError:
        v4, v6 = (1, 0) if version == 4 else (0, 1)
        sys.exit(f"Failed to allocate any IPs (requested {v4} IPv4s and {v6} IPv6s). "
                 "Pools are likely exhausted.")


def assign(ds: Datastore, requested: str):
    """libcalico get_ip_and_pool: "ipv4"/"ipv6" any pool, a CIDR exactly that pool, else
    exactly that address. Returns the assigned address."""
    if requested.lower() in ("ipv4", "ipv6"):
        ip = _auto(ds, 4 if requested.endswith("4") else 6)
        _pool_of(ds, ip)
        return ip
    if "/" in requested:
        pool = _exact_pool(ds, requested)
        if pool is None:
            print(f"Pool {requested} is not found")
            sys.exit(1)
        return _auto(ds, ipaddress.ip_network(pool.cidr).version, pool.cidr)
    ip = ipaddress.ip_address(requested)
    pool = _pool_of(ds, ip)
    try:
        Ipam(ds).assign_ip(str(ip), hostname(), attributes={})
    except AlreadyAssignedError:
        paragraph(f"IP address is already assigned in pool {pool}.")
        sys.exit(1)
    except IpamError as exc:          # e.g. a pool that is not Calico IPAM's (ipam false)
        paragraph(str(exc))
        sys.exit(1)
    return ip


def _release(ds: Datastore, ips) -> None:
    Ipam(ds).release_ips([str(i) for i in ips])


def _addr_of(net: str):
    return ipaddress.ip_address(net.split("/")[0])


# -- container add / remove ---------------------------------------------------------------------

def _running_or_exit(w: Workload, wrap: bool = False) -> None:
    if not w.running:
        (paragraph if wrap else print)(f"{w.given} is not currently running.")
        sys.exit(1)


def add(ds: Datastore, name: str, requested: str, iface: str) -> int:
    enforce_root()
    w = lookup(name)
    if w.orchestrator == DOCKER:
        _running_or_exit(w, wrap=True)
        if w.host_network:
            paragraph(f"Can't add {name} to Calico because it is running NetworkMode = host.")
            sys.exit(1)
    try:
        _workload_endpoint(ds, w)
    except endpoint.NoMatch:
        pass
    except endpoint.MultipleMatch:
        _already(name)
    else:
        _already(name)
    ep_id = uuid.uuid1().hex
    host_name, temp_name = f"cali{ep_id[:11]}", f"tmp{ep_id[:11]}"
    ip = assign(ds, requested)
    try:
        netns.increment_metrics(w.ns)
        netns.create_veth(host_name, temp_name)
        netns.move_into(w.ns, temp_name, iface)
        netns.add_ip(w.ns, ip, iface)
        netns.add_default_routes(w.ns, host_name, iface)
        mac = w.ns.mac(iface)
    except netns.NetnsError as exc:
        # 0.22 died with a traceback here and kept the address; undo what was done instead
        _undo(ds, ip, host_name, temp_name)
        paragraph(f"Failed to set up Calico networking in {name}: {exc}")
        sys.exit(1)
    # libcalico wrote "docker" here even for a namespace file, which later lookups (under
    # "namespace") never found; the orchestrator the lookups use is written instead
    ds.set_endpoint(Endpoint(hostname=hostname(), orchestrator_id=w.orchestrator,
                             workload_id=w.workload_id, endpoint_id=ep_id, name=host_name,
                             mac=mac, profile_ids=(),
                             ipv4_nets=(f"{ip}/32",) if ip.version == 4 else (),
                             ipv6_nets=(f"{ip}/128",) if ip.version == 6 else ()))
    paragraph(f"IP {ip} added to {name}")
    return 0


def _already(name: str) -> NoReturn:
    paragraph(f"{name} has already been configured with Calico Networking.")
    sys.exit(1)


def _undo(ds: Datastore, ip, host_name: str, temp_name: str) -> None:
    _release(ds, [ip])
    for link in (host_name, temp_name):
        try:
            netns.remove_veth(link)
        except netns.NetnsError:
            pass


def remove(ds: Datastore, name: str) -> int:
    enforce_root()
    host = hostname()
    if _is_path(name):
        orchestrator, workload_id = NAMESPACE, name.replace("/", "-")
    else:
        # a stored workload ID works without Docker; anything else is resolved by Docker
        orchestrator, workload_id = DOCKER, name
        if not endpoint.select(ds, endpoint.Filters(host, DOCKER, name)):
            workload_id = name = inspect(name)["Id"]
    for ep in endpoint.select(ds, endpoint.Filters(host, orchestrator, workload_id)):
        _release(ds, [_addr_of(n) for n in ep.ipv4_nets + ep.ipv6_nets])
        try:
            netns.remove_veth(ep.name)
        except netns.NetnsError:
            print(f"Could not remove Calico interface {ep.name}")
    try:
        ds.remove_workload(host, orchestrator, workload_id)
        print(f"Removed Calico from {name}")
    except NotFound:
        print(f"Failed find Calico data for {name}")
    return 0


# -- container <CONTAINER> ip add|remove --------------------------------------------------------

def _attached(ds: Datastore, name: str, unknown) -> tuple[Workload, Endpoint]:
    """The running container `name` and its endpoint; `unknown()` prints what each command
    says when Calico does not know the container, then exit 1."""
    enforce_root()
    w = lookup(name)
    if w.orchestrator == DOCKER:
        _running_or_exit(w)
    try:
        return w, _workload_endpoint(ds, w)
    except (endpoint.NoMatch, endpoint.MultipleMatch):
        unknown()
        sys.exit(1)


def ip_add(ds: Datastore, name: str, requested: str, iface: str) -> int:
    w, ep = _attached(ds, name, lambda: (
        print("Failed to add IP address to container.\n"),
        paragraph(f"Container {name} is unknown to Calico."),
        paragraph("Use `calicoctl container add` to add the container to the Calico network.")))
    # checked before anything is assigned (0.22 checked after, leaving the address stored)
    if not w.ns.link_exists(iface):
        print("Interface provided does not exist in container. Aborting.")
        sys.exit(1)
    ip = assign(ds, requested)
    updated = _with_net(ep, ip, add=True)
    ds.set_endpoint(updated)
    try:
        netns.add_ip(w.ns, ip, iface)
    except netns.NetnsError:
        print("Error updating networking in container. Aborting.")
        ds.set_endpoint(ep)
        _release(ds, [ip])
        sys.exit(1)
    print(f"IP {ip} added to {name}")
    return 0


def ip_remove(ds: Datastore, name: str, text: str, iface: str) -> int:
    ip = _address(text)
    if ip is None:                    # 0.22 crashed on "ipv4" or a CIDR here
        paragraph(INVALID_IP)
        sys.exit(1)
    w, ep = _attached(ds, name, lambda: print("Container is unknown to Calico."))
    nets = ep.ipv4_nets if ip.version == 4 else ep.ipv6_nets
    if f"{ip}/{netns.PREFIX_LEN[ip.version]}" not in nets:
        print("IP address is not assigned to container. Aborting.")
        sys.exit(1)
    ds.set_endpoint(_with_net(ep, ip, add=False))
    try:
        netns.remove_ip(w.ns, ip, iface)
    except netns.NetnsError:
        print("Error updating networking in container. Aborting.")
        sys.exit(1)
    _release(ds, [ip])
    print(f"IP {text} removed from {name}")
    return 0


def _with_net(ep: Endpoint, ip, add: bool) -> Endpoint:
    net = f"{ip}/{netns.PREFIX_LEN[ip.version]}"
    field = "ipv4_nets" if ip.version == 4 else "ipv6_nets"
    nets = [n for n in getattr(ep, field) if n != net] + ([net] if add else [])
    return dataclasses.replace(ep, **{field: tuple(sorted(nets))})
