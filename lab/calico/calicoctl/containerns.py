"""The veth plumbing of `calicoctl container` (libcalico 0.17 netns.py), spec §3.7.

libcalico entered a container's network namespace with `ip netns exec` through a symlink in
/var/run/netns; here every in-namespace command is `nsenter --net=<path>`, which needs no
symlink and leaves the node's own mounts alone. `ip link set … netns <path>` takes the same
path. Every argument reaching an argv is either checked here or comes from Docker as an int.
"""
from __future__ import annotations

import ipaddress
import json
import re
import subprocess

TIMEOUT = 5                       # libcalico's IP_CMD_TIMEOUT
MAX_METRIC = 0xFFFFFFFF
GATEWAY_V4 = "169.254.1.1"        # the dummy next hop that proxy ARP answers
PREFIX_LEN = {4: 32, 6: 128}
IFACE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,14}$")


class NetnsError(Exception):
    """An ip command failed; str() is its output."""


def valid_interface(name: str) -> bool:
    return bool(IFACE_RE.match(name or ""))


def _run(argv: list[str]) -> str:
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    if cp.returncode != 0:
        raise NetnsError((cp.stdout + cp.stderr).strip() or f"{argv[0]} exited {cp.returncode}")
    return cp.stdout


class Namespace:
    """A network namespace named by a file: /proc/<pid>/ns/net or a bind-mounted path."""

    def __init__(self, path: str) -> None:
        self.path = path

    @classmethod
    def of_pid(cls, pid: int) -> "Namespace":
        return cls(f"/proc/{int(pid)}/ns/net")

    def run(self, *args: str) -> str:
        return _run(["nsenter", f"--net={self.path}", *args])

    def link_exists(self, iface: str) -> bool:
        try:
            self.run("ip", "link", "show", "dev", iface)
            return True
        except NetnsError:
            return False

    def ipv6_enabled(self, iface: str) -> bool:
        """Whether the interface takes IPv6 here: /proc/sys/net is the reader's namespace's."""
        try:
            return self.run("cat", f"/proc/sys/net/ipv6/conf/{iface}/disable_ipv6").strip() == "0"
        except NetnsError:
            return False

    def mac(self, iface: str) -> str:
        """The interface's MAC, read inside the namespace (its /sys is not ours)."""
        return json.loads(self.run("ip", "-j", "link", "show", "dev", iface))[0]["address"]


# -- host side ----------------------------------------------------------------------------------

def create_veth(host_name: str, temp_name: str) -> None:
    _run(["ip", "link", "add", host_name, "type", "veth", "peer", "name", temp_name])
    _run(["ip", "link", "set", host_name, "up"])       # up at once, so Felix notices it


def veth_exists(host_name: str) -> bool:
    return subprocess.run(["ip", "link", "show", "dev", host_name], capture_output=True,
                          timeout=TIMEOUT).returncode == 0


def remove_veth(host_name: str) -> bool:
    """False if there was none (removal is best effort, as in libcalico)."""
    if not veth_exists(host_name):
        return False
    _run(["ip", "link", "del", host_name])
    return True


def ipv6_link_local(iface: str) -> str | None:
    """The host veth's fe80:: address, or None when this host has no IPv6 on it."""
    try:
        out = _run(["ip", "-6", "-j", "addr", "show", "dev", iface, "scope", "link"])
    except NetnsError:
        return None
    for link in json.loads(out or "[]"):
        for a in link.get("addr_info", []):
            if a.get("local", "").startswith("fe80:"):
                return a["local"]
    return None


# -- container side -----------------------------------------------------------------------------

def move_into(ns: Namespace, temp_name: str, iface: str) -> None:
    _run(["ip", "link", "set", temp_name, "netns", ns.path])
    ns.run("ip", "link", "set", "dev", temp_name, "name", iface)
    ns.run("ip", "link", "set", iface, "up")


def add_ip(ns: Namespace, ip, iface: str) -> None:
    ip = ipaddress.ip_address(str(ip))
    ns.run("ip", f"-{ip.version}", "addr", "add", f"{ip}/{PREFIX_LEN[ip.version]}", "dev", iface)


def remove_ip(ns: Namespace, ip, iface: str) -> None:
    ip = ipaddress.ip_address(str(ip))
    ns.run("ip", f"-{ip.version}", "addr", "del", f"{ip}/{PREFIX_LEN[ip.version]}", "dev", iface)


def add_default_routes(ns: Namespace, host_name: str, iface: str) -> None:
    """IPv4: a connected route to 169.254.1.1 and the default via it; IPv6 (when the host
    veth has a link-local address): the default via that address. Docker 20.10 disables IPv6
    inside containers of IPv4-only networks (2016's Docker did not), where that route fails
    ("IPv6 is disabled on nexthop device"): it is left out there, as on a host without IPv6."""
    next_hop_6 = ipv6_link_local(host_name) if ns.ipv6_enabled(iface) else None
    ns.run("ip", "-4", "route", "replace", GATEWAY_V4, "dev", iface)
    ns.run("ip", "-4", "route", "replace", "default", "via", GATEWAY_V4, "dev", iface)
    if next_hop_6:
        ns.run("ip", "-6", "route", "replace", "default", "via", next_hop_6, "dev", iface)


class Route:
    """One line of `ip route`, with its metric split out (libcalico netns.Route)."""

    def __init__(self, line: str) -> None:
        self.line = line
        self.default = line.startswith("default")
        m = re.search(r"metric\s+(\d+)", line)
        self.metric = int(m.group(1)) if m else 0

    def argv(self, metric: int | None = None) -> list[str]:
        rest = re.sub(r"metric\s+\d+", "", self.line).split()
        return rest + ["metric", str(self.metric if metric is None else metric)]


def metric_changes(route_lines: list[str]) -> list[tuple[Route, int]]:
    """Which default routes move to which metric so Calico's metric-0 default can go in:
    nothing unless a default has metric 0; then each goes one up, highest first, unless that
    would collide or overflow."""
    defaults = {}
    for line in route_lines:
        r = Route(line)
        if r.default:
            defaults[r.metric] = r
    if 0 not in defaults:
        return []
    changes, taken = [], []
    for metric, route in sorted(defaults.items(), key=lambda kv: -kv[0]):
        if metric + 1 >= MAX_METRIC or metric + 1 in taken:
            taken.append(metric)
        else:
            changes.append((route, metric + 1))
            taken.append(metric + 1)
    return changes


def increment_metrics(ns: Namespace) -> None:
    for route, metric in metric_changes(ns.run("ip", "route").splitlines()):
        ns.run("ip", "route", "add", *route.argv(metric))
        ns.run("ip", "route", "del", *route.argv())
