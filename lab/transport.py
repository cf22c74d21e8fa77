"""Host transports: one small class per way into a host, all with the same interface.

`run(argv, timeout)` gives exit code, stdout and stderr; `read_file(path)` gives bytes.
argv is a list and never goes through a shell; pass ["sh", "-c", script] explicitly when a
shell is wanted, with every interpolated value shlex-quoted. The local-namespace transport
is here; an SSH one (paramiko) implements the same interface for real labs.
"""
from __future__ import annotations

import abc
import os
import subprocess
import sys
from typing import Mapping, Sequence

from . import netns, paths
from .errors import LabError
from .proc import Result
from .topology import Topology

LAB_BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin")
# the Debian docker 20.10 client before /usr/local/bin, where some machines keep a newer one
NODE_PATH = f"{LAB_BIN}:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/sbin:/usr/local/bin"


class CommandTimeout(LabError):
    pass


class Host(abc.ABC):
    """A machine of the lab, however it is reached."""

    name: str

    @abc.abstractmethod
    def run(self, argv: Sequence[str], timeout: float = 30, input: str | None = None) -> Result:
        """Run argv on the host; CommandTimeout if it outlives `timeout` seconds."""

    def read_file(self, path: str) -> bytes:
        res = self._run_bytes(["cat", "--", path], timeout=30)
        if res.returncode != 0:
            raise LabError(f"{self.name}: cannot read {path}: "
                           f"{res.stderr.decode(errors='replace').strip()}")
        return res.stdout

    @abc.abstractmethod
    def _run_bytes(self, argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
        ...


def tutorial_env(topology: Topology) -> dict[str, str]:
    """What a root shell on a tutorial node has: its .bashrc exports ETCD_AUTHORITY."""
    return {
        "PATH": NODE_PATH,
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "ETCD_AUTHORITY": topology.etcd_authority,
        "DOCKER_HOST": "unix:///var/run/docker.sock",
        "CALAB_PYTHON": sys.executable,   # what lab/bin/calicoctl runs on
    }


def node_exec_argv(node: str, argv: list[str]) -> list[str]:
    """argv run inside an embedded lab node's network, mount and UTS namespaces (how the
    builder and sshd start the nodes' daemons)."""
    p = paths.NodePaths(node)
    return netns.nsenter(argv, net=p.netns_file, mnt=p.mnt_file, uts=p.uts_file)


class LocalNamespaceHost(Host):
    """A host of the embedded lab: a network (+ mount + UTS) namespace on this machine."""

    def __init__(self, name: str, net: str, mnt: str | None = None, uts: str | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.name, self.net, self.mnt, self.uts = name, net, mnt, uts
        self.env = dict(env or {})

    def argv(self, argv: Sequence[str]) -> list[str]:
        return netns.nsenter(list(argv), net=self.net, mnt=self.mnt, uts=self.uts)

    def _run_bytes(self, argv: Sequence[str], timeout: float,
                   input: bytes | None = None) -> subprocess.CompletedProcess:
        full = self.argv(argv)
        try:
            return subprocess.run(full, input=input, capture_output=True, timeout=timeout,
                                  env={**os.environ, **self.env})
        except subprocess.TimeoutExpired as exc:
            raise CommandTimeout(f"{self.name}: `{' '.join(argv)}` timed out after {timeout:g}s") from exc

    def run(self, argv: Sequence[str], timeout: float = 30, input: str | None = None) -> Result:
        cp = self._run_bytes(argv, timeout, input.encode() if input is not None else None)
        return Result(cp.returncode, cp.stdout.decode(errors="replace"),
                      cp.stderr.decode(errors="replace"))

    def __repr__(self) -> str:
        return f"LocalNamespaceHost({self.name!r})"


def lab_hosts(topology: Topology) -> dict[str, LocalNamespaceHost]:
    """Every node of the embedded lab, plus the management host (network namespace only)."""
    env = tutorial_env(topology)
    hosts = {}
    for name in topology.node_names:
        p = paths.NodePaths(name)
        hosts[name] = LocalNamespaceHost(name, p.netns_file, p.mnt_file, p.uts_file, env)
    mgmt = paths.NodePaths(topology.management.name)
    hosts[mgmt.name] = LocalNamespaceHost(mgmt.name, mgmt.netns_file, env=env)
    return hosts
