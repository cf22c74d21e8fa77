"""The reference node's Docker images, built locally (no registry can be reached here).

`calico/node:v0.22.0` and `calico/node-libnetwork:v0.9.0` carry the names calicoctl 0.22
uses by default (and `calico/routereflector:latest` the tutorial's), so `docker ps` on a lab node reads like a 2016 host. Each image is a tiny
root filesystem whose /bin, /sbin and /lib point into /usr; the host's /usr (python, bird,
iptables, ipset, iproute2) and this project are bind-mounted read-only when the container
runs (`runtime_binds`). That is the one way these containers differ from the real ones.
"""
from __future__ import annotations

import io
import json
import os
import sys
import tarfile

from ..image import add_dirs, add_root_account, add_symlink

NODE_IMAGE = "calico/node:v0.22.0"
LIBNETWORK_IMAGE = "calico/node-libnetwork:v0.9.0"
ROUTE_REFLECTOR_IMAGE = "calico/routereflector:latest"
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# what each image runs, as `python -m <module> [args]`
ENTRY = {NODE_IMAGE: ["lab.calico.node"], LIBNETWORK_IMAGE: ["lab.calico.libnetwork"],
         ROUTE_REFLECTOR_IMAGE: ["lab.calico.bird", "routereflector"]}
# capabilities that work on this VM: --privileged fails (no CAP_SYS_RESOURCE in the bounding set)
CAP_ADD, CAP_DROP, SECURITY_OPT = ["ALL"], ["SYS_RESOURCE"], ["seccomp=unconfined"]
# `--security-opt systempaths=unconfined`: an unmasked, writable /proc/sys, for Felix's
# per-interface sysctls (--privileged implies it); the API spells it as empty path lists
UNCONFINED_SYSTEM_PATHS = {"MaskedPaths": [], "ReadonlyPaths": []}


def rootfs_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs = ("etc", "root", "proc", "sys", "dev", "run", "var", "var/log", "var/run", "usr")
        add_dirs(tar, {"tmp": 0o1777, **{d: 0o755 for d in dirs}})
        for name in ("bin", "sbin", "lib", "lib64"):
            add_symlink(tar, name, f"usr/{name}")
        add_root_account(tar)
    return buf.getvalue()


def image_changes(image: str) -> list[str]:
    cmd = json.dumps([sys.executable, "-m", *ENTRY[image]])
    return [f"CMD {cmd}",
            f"ENV PYTHONPATH={PROJECT_ROOT}",
            "ENV PYTHONUNBUFFERED=1",
            "ENV PYTHONDONTWRITEBYTECODE=1",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def runtime_binds() -> dict[str, dict]:
    """Host paths the containers need read-only: /usr, the project, the Python it runs on."""
    paths = ["/usr", "/etc/alternatives", PROJECT_ROOT, sys.prefix, sys.base_prefix]
    keep: list[str] = []
    for p in sorted(set(os.path.realpath(x) for x in paths if os.path.exists(x)), key=len):
        if not any(p == k or p.startswith(k.rstrip("/") + "/") for k in keep):
            keep.append(p)
    return {p: {"bind": p, "mode": "ro"} for p in keep}


def import_images(api) -> None:
    """Import both images into one dockerd (docker SDK low-level client)."""
    data = rootfs_tar()
    for image in ENTRY:
        repository, tag = image.rsplit(":", 1)
        out = api.import_image_from_data(data, repository=repository, tag=tag,
                                         changes=image_changes(image))
        if "error" in str(out).lower():
            raise RuntimeError(f"docker import of {image} failed: {out}")


def docker_run_line(name: str, image: str, env: dict, binds: dict) -> str:
    """The `docker run` equivalent of run_container, as calicoctl node prints it."""
    flags = ["-d", "--net=host", "--cap-add=ALL", "--cap-drop=SYS_RESOURCE",
             "--security-opt=seccomp=unconfined", "--security-opt=systempaths=unconfined",
             f"--name={name}", "--restart=always"]
    flags += [f"-e {k}={v}" for k, v in env.items()]
    flags += [f"-v {src}:{b['bind']}" + (":ro" if b["mode"] == "ro" else "")
              for src, b in {**binds, **runtime_binds()}.items()]
    return f"docker run {' '.join(flags)} {image}"


def run_container(client, name: str, image: str, env: dict, binds: dict):
    """(Re)create and start a reference-node container the way `calicoctl node` runs
    calico-node: host network, restart always, the capabilities this VM allows, plus the
    read-only runtime binds. An old container of that name is removed first."""
    from docker.errors import NotFound
    try:
        client.containers.get(name).remove(force=True)
    except NotFound:
        pass
    binds = {**binds, **runtime_binds()}
    api = client.api
    host_config = api.create_host_config(
        network_mode="host", restart_policy={"Name": "always"}, binds=binds,
        cap_add=CAP_ADD, cap_drop=CAP_DROP, security_opt=SECURITY_OPT)
    host_config.update(UNCONFINED_SYSTEM_PATHS)
    created = api.create_container(image, name=name, environment=env, host_config=host_config,
                                   volumes=[b["bind"] for b in binds.values()])
    api.start(created["Id"])
    return client.containers.get(created["Id"])
