"""Checks made before anything is built, each failing with one line that says the fix."""
from __future__ import annotations

import os
import shutil

from . import paths
from .errors import LabError

# binary -> Debian package that provides it
REQUIRED_BINARIES = {
    "etcd": "etcd-server",
    "etcdctl": "etcd-client",
    "dockerd": "docker.io",
    "containerd": "containerd",
    "runc": "runc",
    "bird": "bird",
    "birdc": "bird",
    "iptables": "iptables",
    "ipset": "ipset",
    "ip": "iproute2",
    "ss": "iproute2",
    "busybox": "busybox-static",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "sshd": "openssh-server",
    "tcpdump": "tcpdump",
}
INSTALL_HINT = "run `./run setup` (or: apt-get install {pkgs})"


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the embedded lab needs root (it creates network namespaces, mounts and "
                       "daemons): run it as root, e.g. `sudo python -m lab up`")


def missing_packages() -> list[str]:
    """Debian packages whose binaries are not on PATH (the lab starts them by name)."""
    missing = {pkg for exe, pkg in REQUIRED_BINARIES.items() if shutil.which(exe) is None}
    return sorted(missing)


def require_packages() -> None:
    missing = missing_packages()
    if missing:
        raise LabError(f"missing Debian package(s) {', '.join(missing)}: "
                       + INSTALL_HINT.format(pkgs=" ".join(missing)))


def check_all() -> None:
    paths.require_prefix()
    require_root()
    require_packages()
