"""Take the embedded lab down and leave nothing behind, with or without a state file.

`down` stops what the state file names, gently and in order (containers, dockerds, etcd).
`sweep` then finds everything else by what it is rather than by what was recorded: any
process inside a lab namespace or a lab cgroup (the nodes' sshds and their sessions too, and
an sshd run with a lab config wherever it is), the `calab-*` namespaces, the namespace
files, cgroups and directories (the ssh keys live under VAR). That is what makes `up`
after a kill -9 safe.
"""
from __future__ import annotations

import concurrent.futures
import os
import shutil
from typing import Callable

from . import docker_api, paths
from .proc import kill_pids, run, stop
from .state import LabState

Log = Callable[[str], None]


def down(st: LabState | None, log: Log = print) -> None:
    if st is not None:
        _remove_containers(st)
        dockerds = [d for k, d in st.daemons.items() if k.startswith("dockerd@")]
        others = [d for k, d in st.daemons.items() if not k.startswith("dockerd@")]
        stop(dockerds, timeout=20)      # dockerds first: they hold their cluster store open
        stop(others, timeout=10)
    sweep(log)


def _remove_containers(st: LabState) -> None:
    """`docker rm -f` everything first, so dockerd's shutdown has nothing to wait for."""
    def clear(node: str) -> None:
        key = f"dockerd@{node}"
        if key not in st.daemons or not st.daemons[key].alive():
            return
        client = docker_api.client(paths.NodePaths(node).docker_sock, timeout=15)
        try:
            for c in client.api.containers(all=True, quiet=True):
                client.api.remove_container(c["Id"], force=True)
        except docker_api.ERRORS:
            pass  # the sweep kills whatever is left
        finally:
            client.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(clear, st.topology.node_names))


# -- finding leftovers ----------------------------------------------------------------------

def lab_netns_files() -> list[str]:
    try:
        names = os.listdir(paths.NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(paths.netns_path(n) for n in names if n.startswith(f"{paths.PREFIX}-"))


def ns_files() -> list[str]:
    try:
        return sorted(os.path.join(paths.NS_DIR, n) for n in os.listdir(paths.NS_DIR))
    except (FileNotFoundError, NotADirectoryError):
        return []


def lab_cgroups() -> list[str]:
    """Per-node cgroup parents (dockerd --cgroup-parent) in every hierarchy, deepest first."""
    found = []
    root = "/sys/fs/cgroup"
    for hierarchy in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        top = os.path.join(root, hierarchy)
        for entry in sorted(os.listdir(top)) if os.path.isdir(top) else []:
            if entry.startswith(f"{paths.PREFIX}-") and os.path.isdir(os.path.join(top, entry)):
                for dirpath, _dirs, _files in os.walk(os.path.join(top, entry), topdown=False):
                    found.append(dirpath)
    return found


def _ns_inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def lab_processes() -> list[int]:
    """PIDs living in a lab namespace or a lab cgroup, or a node's sshd found by its config
    (never ours or our ancestors')."""
    inodes = {i for i in map(_ns_inode, lab_netns_files() + ns_files()) if i is not None}
    spared = _self_and_ancestors()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in spared:
            continue
        if _in_lab(entry, inodes) or _is_lab_sshd(entry):
            pids.append(int(entry))
    return sorted(pids)


def _is_lab_sshd(pid: str) -> bool:
    """An sshd started with one of this lab's configs: found even when the namespace files
    that would otherwise identify it are already gone."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() != "sshd":
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f"{paths.SSH_DIR}/".encode() in f.read()
    except OSError:
        return False


def _in_lab(pid: str, inodes: set[int]) -> bool:
    for ns in ("net", "mnt", "uts"):
        try:
            link = os.readlink(f"/proc/{pid}/ns/{ns}")
        except OSError:
            return False  # gone, or a kernel thread
        if int(link[link.index("[") + 1:-1]) in inodes:
            return True
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return any(line.split(":", 2)[2].startswith(f"/{paths.PREFIX}-") for line in f)
    except (OSError, IndexError):
        return False


def _self_and_ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            pid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):
            break
    return pids


def leftovers() -> list[str]:
    """Human-readable list of whatever a lab left on this machine (empty = clean)."""
    found = [f"process {pid}" for pid in lab_processes()]
    found += [f"namespace {p}" for p in lab_netns_files()]
    found += [f"namespace file {p}" for p in ns_files()]
    found += [f"cgroup {p}" for p in lab_cgroups()]
    found += [f"directory {d}" for d in (paths.RUN, paths.VAR) if os.path.exists(d)]
    return found


# -- removing them --------------------------------------------------------------------------

def _unmount_all(path: str) -> None:
    """Unmount every layer at path (an earlier crash may have stacked one more)."""
    for _ in range(8):
        if not is_mountpoint(path) or not run(["umount", "-n", path], check=False).ok:
            return


def is_mountpoint(path: str) -> bool:
    """From mountinfo: os.path.ismount misses a directory bind-mounted onto itself."""
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def sweep(log: Log = print) -> None:
    paths.require_prefix()
    pids = lab_processes()
    if pids:
        log(f"killing {len(pids)} leftover lab process(es)")
        kill_pids(pids)
    for f in ns_files():
        _unmount_all(f)
    _unmount_all(paths.NS_DIR)
    for f in lab_netns_files():
        run(["ip", "netns", "delete", os.path.basename(f)], check=False)
    for cg in lab_cgroups():
        try:
            os.rmdir(cg)
        except OSError:
            pass
    for d in (paths.RUN, paths.VAR):
        shutil.rmtree(d, ignore_errors=True)
    rest = leftovers()
    if rest:
        log("could not remove: " + "; ".join(rest))
