"""The test image `calico-net-test:1.0`: busybox-static in a tarball, imported with no registry.

The tutorial builds it from a CentOS Dockerfile with nc and telnet; busybox gives the same
tools (sh, nc, ping, telnet, ip, timeout, …) in 2 MB, and `docker import` needs no registry.
"""
from __future__ import annotations

import io
import os
import subprocess
import tarfile

from .errors import LabError

IMAGE = "calico-net-test:1.0"
BUSYBOX = "/bin/busybox"
# the applets the tutorial and the probes rely on; checked so a stripped busybox fails early
REQUIRED_APPLETS = ("sh", "nc", "ping", "telnet", "ip", "timeout", "sleep", "cat")
CHANGES = ['CMD ["/bin/sh"]', "ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin"]


def busybox_applets(busybox: str = BUSYBOX) -> list[str]:
    try:
        out = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise LabError(f"{busybox} does not run ({exc}): install Debian package busybox-static") from exc
    applets = sorted(set(out.split()) - {"busybox"})
    missing = [a for a in REQUIRED_APPLETS if a not in applets]
    if missing:
        raise LabError(f"{busybox} lacks applets {missing}: install Debian package busybox-static")
    return applets


def build_rootfs_tar(dest: str, busybox: str = BUSYBOX) -> str:
    """Write the image's root filesystem as a tarball (once; it never changes)."""
    if os.path.exists(dest):
        return dest
    applets = busybox_applets(busybox)
    tmp = f"{dest}.tmp"
    with tarfile.open(tmp, "w") as tar:
        add_dirs(tar, {"bin": 0o755, "etc": 0o755, "root": 0o700, "tmp": 0o1777})
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            add_symlink(tar, f"bin/{applet}", "busybox")
        add_root_account(tar)
    os.replace(tmp, dest)
    return dest


# -- tarball pieces, shared with the reference node's images (lab/calico/image.py) -------------

def add_dirs(tar: tarfile.TarFile, modes: dict[str, int]) -> None:
    for name, mode in modes.items():
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, mode
        tar.addfile(info)


def add_symlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
    tar.addfile(info)


def add_root_account(tar: tarfile.TarFile) -> None:
    """/etc/passwd and /etc/group with root only: what `docker exec` and `id` expect."""
    for name, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"), ("etc/group", "root:x:0:\n")):
        data = text.encode()
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))


def import_image(api, tar_path: str, image: str = IMAGE) -> None:
    """Import into one node's dockerd through the docker SDK's low-level client."""
    repository, tag = image.rsplit(":", 1)
    # from_file, not import_image: the latter treats an unreadable path as a URL to fetch
    out = api.import_image_from_file(tar_path, repository=repository, tag=tag, changes=CHANGES)
    if "error" in str(out).lower():
        raise LabError(f"docker import of {image} failed: {out}")
