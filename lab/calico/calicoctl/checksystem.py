"""
Usage:
  calicoctl checksystem [--fix] [--libnetwork] [--runtime=<RUNTIME>]

Description:
  Check for incompatibilities between Calico and the host system

Options:
  --fix  DEPRECATED: checksystem no longer fixes issues that it detects
  --libnetwork  Check for the correct docker version for libnetwork deployments
  --runtime=<RUNTIME>  Specify the runtime used to run the calico/node
                       container, either "docker" or "rkt".
                       [default: docker]
"""
from __future__ import annotations

import dataclasses
import gzip
import os
import platform
import re
import sys

from .common import datastore, docker_client, enforce_root

DOCKER_API = "1.16"
DOCKER_LIBNETWORK_API = "1.21"
ETCD_MIN = "2.0.10"                  # 2.0.9 broke compare-and-swap with python-etcd
MIN_KERNEL = "2.6.24"                # network namespaces and veth pairs
# module -> the kernel config option that builds it in (a kernel without loadable modules,
# like this VM's, has no /lib/modules and no lsmod: its config is the only witness)
REQUIRED_MODULES = {"xt_set": "CONFIG_NETFILTER_XT_SET", "ip6_tables": "CONFIG_IP6_NF_IPTABLES"}
IPIP_MODULE = ("ipip", "CONFIG_NET_IPIP")


def err(message: str) -> None:
    print(message, file=sys.stderr)


def run(args) -> int:
    if args["--fix"]:
        err("WARNING: Deprecated flag --fix: checksystem no longer fixes detected issues")
    runtime = args["--runtime"]
    if runtime not in ("docker", "rkt"):
        print(f"Invalid runtime specified: '{runtime}'")
        sys.exit(1)
    enforce_root()
    ok = check_system(libnetwork=args["--libnetwork"], check_docker=runtime == "docker")
    return 0 if ok else 1


def check_system(libnetwork: bool = False, check_docker: bool = True) -> bool:
    """0.22's four checks in its order (modules, Docker, etcd, kernel), plus IPIP: every
    problem is reported, none stops the others."""
    view = KernelView.read()
    results = [check_modules(view)]
    if check_docker:
        results.append(check_docker_api(libnetwork))
    etcd_ok, ipip_pools = check_etcd()
    results += [etcd_ok, check_ipip(view, ipip_pools), check_kernel(platform.uname().release)]
    return all(results)


# -- kernel modules -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class KernelView:
    """Everything the module checks read, gathered once; None where a source is missing."""
    modules_dep: tuple[str, ...] | None = None       # /lib/modules/<release>/modules.dep
    modules_builtin: tuple[str, ...] | None = None   # /lib/modules/<release>/modules.builtin
    loaded: str | None = None                        # /proc/modules (what lsmod prints)
    config: str | None = None                        # /proc/config.gz or /boot/config-<release>
    sys_modules: frozenset[str] = frozenset()        # /sys/module/* (loaded or built in)

    @classmethod
    def read(cls, release: str | None = None) -> "KernelView":
        release = release or platform.uname().release
        base = f"/lib/modules/{release}"
        try:
            sys_modules = frozenset(os.listdir("/sys/module"))
        except OSError:
            sys_modules = frozenset()
        return cls(_lines(f"{base}/modules.dep"), _lines(f"{base}/modules.builtin"),
                   _text("/proc/modules"), _kernel_config(release), sys_modules)

    @property
    def has_any_source(self) -> bool:
        return any(x is not None for x in (self.modules_dep, self.modules_builtin, self.loaded,
                                           self.config)) or bool(self.sys_modules)


def _text(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    return (gzip.decompress(data) if path.endswith(".gz") else data).decode(errors="replace")


def _lines(path: str) -> tuple[str, ...] | None:
    text = _text(path)
    return None if text is None else tuple(text.splitlines())


def _kernel_config(release: str) -> str | None:
    return _text("/proc/config.gz") or _text(f"/boot/config-{release}")


def module_available(view: KernelView, module: str, option: str) -> bool:
    """Loadable (modules.dep), built in (modules.builtin, or =y in the kernel config), or
    loaded now (/proc/modules, /sys/module)."""
    ko = f"/{module}.ko"
    if any(ko in line for line in (view.modules_dep or ()) + (view.modules_builtin or ())):
        return True
    if view.loaded and re.search(rf"^{re.escape(module)}\s", view.loaded, re.M):
        return True
    if view.config and re.search(rf"^{re.escape(option)}=y$", view.config, re.M):
        return True
    return module in view.sys_modules


def check_modules(view: KernelView) -> bool:
    if not view.has_any_source:
        err("ERROR: Could not check for loaded modules \n"
            "no /lib/modules, /proc/modules, kernel config or /sys/module to read")
        return False
    ok = True
    for module, option in REQUIRED_MODULES.items():
        if not module_available(view, module, option):
            err(f"WARNING: Unable to detect the {module} module as available or builtin.")
            ok = False
    return ok


def check_ipip(view: KernelView, ipip_pools: list[str]) -> bool:
    """Not in 0.22, which never looked: without IPIP no tunl0 can exist, so an --ipip pool
    carries nothing between hosts. Reported always; a failure only if such a pool exists."""
    module, option = IPIP_MODULE
    if module_available(view, module, option):
        return True
    err(f"WARNING: Unable to detect the {module} module as available or builtin.")
    if ipip_pools:
        err(f"ERROR: IP-in-IP is enabled on pool(s) {', '.join(ipip_pools)}, but this kernel "
            "has no IPIP support: no tunl0 device can exist, so no traffic is tunnelled.")
        return False
    return True


# -- Docker, etcd, kernel -----------------------------------------------------------------------

def normalize_version(text: str) -> list[int]:
    """'1.5.10' -> [1, 5, 10]; trailing '.0's do not count."""
    return [int(x) for x in re.sub(r"(\.0+)*$", "", text).split(".")]


def check_docker_api(libnetwork: bool) -> bool:
    import docker.errors
    import requests.exceptions
    wanted = DOCKER_LIBNETWORK_API if libnetwork else DOCKER_API
    try:
        client = docker_client(timeout=30)
        try:
            api = client.version()["ApiVersion"]
        finally:
            client.close()
    except docker.errors.APIError:
        err(f"ERROR: Docker server must support Docker Remote API v{wanted} or greater.")
        return False
    except (docker.errors.DockerException, requests.exceptions.ConnectionError):
        err("ERROR: Docker daemon not running.")
        return False
    if normalize_version(api) < normalize_version(wanted):
        if libnetwork:
            err("ERROR: Docker Version does not support Libnetwork.")
        err(f"ERROR: Docker server must support Docker Remote API v{wanted} or greater.")
        return False
    return True


def etcd_version_problem(raw: str) -> str | None:
    """The error for etcd's /version answer, or None when it is new enough."""
    m = re.search(r"(\d+\.\d+\.\d+)", raw)
    if not m:
        return ("ERROR: Unable to detect etcd version. If using etcd with SSL, set ETCD_SCHEME, "
                "ETCD_KEY_FILE, ETCD_CERT_FILE, and ETCD_CA_CERT_FILE environment variables")
    if normalize_version(m.group(1)) < normalize_version(ETCD_MIN):
        return f"ERROR: etcd must be at least version {ETCD_MIN} (Detected version: {m.group(1)})"
    return None


def check_etcd() -> tuple[bool, list[str]]:
    """etcd's /version as 0.22 read it; also the IPIP pools, for check_ipip."""
    import etcd
    ds = datastore()
    try:
        raw = ds.client.api_execute("/version", "GET").data
    except etcd.EtcdConnectionFailed as exc:
        where = os.environ.get("ETCD_ENDPOINTS") or os.environ.get("ETCD_AUTHORITY") \
            or "127.0.0.1:2379"
        err(f"ERROR: Could not connect to etcd at {where}: {exc}")
        return False, []
    problem = etcd_version_problem(raw.decode(errors="replace") if isinstance(raw, bytes) else raw)
    if problem:
        err(problem)
    pools = [p.cidr for p in ds.pools(4) if p.ipip and not p.disabled]
    return problem is None, pools


def kernel_problem(release: str) -> str | None:
    m = re.match(r"^(\d+(?:\.\d+){1,3})(?:\D.*)?$", release)
    if not m:
        return "ERROR: The kernel version does not match expected semantic versioning."
    if [int(x) for x in m.group(1).split(".")] < [int(x) for x in MIN_KERNEL.split(".")]:
        return (f"Minimum kernel version to run Calico is {MIN_KERNEL}.\n"
                f"Detected kernel version: {m.group(1)}")
    return None


def check_kernel(release: str) -> bool:
    problem = kernel_problem(release)
    if problem:
        print(problem)           # 0.22 printed these two on stdout
    return problem is None
