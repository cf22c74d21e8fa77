"""Where the embedded lab keeps things on this machine. One lab at a time.

Everything the lab creates lives under these roots or carries the `calab-` prefix, so
teardown (and crash recovery) can find all of it without trusting any state file.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .errors import LabError


INVALID_PREFIX = "calab-invalid-prefix"   # never a lab's: nothing is found or made under it


def _prefix() -> tuple[str, str | None]:
    """`calab`, or $CALAB_PREFIX: a second lab beside the first (e.g. a developer's tests
    while another lab runs) needs only a different prefix.

    An invalid value is not an import error (that would be a traceback, even for --help): the
    prefix is then INVALID_PREFIX and require_prefix() raises the one-line error; every entry
    point (the CLI, the pytest plugin, builder.up, teardown.down) calls it first."""
    value = os.environ.get("CALAB_PREFIX", "calab")
    if not re.fullmatch(r"[a-z][a-z0-9]{0,7}", value):
        return INVALID_PREFIX, (f"CALAB_PREFIX={value!r}: use 1-8 lower-case letters or digits, "
                                "starting with a letter (or unset it for the default, calab)")
    return value, None


def require_prefix() -> None:
    """Raise the one-line LabError when $CALAB_PREFIX is invalid."""
    if PREFIX_ERROR is not None:
        raise LabError(PREFIX_ERROR)


PREFIX, PREFIX_ERROR = _prefix()
RUN = f"/run/{PREFIX}"            # host-visible runtime: state file, ns files, node sockets
VAR = f"/var/lib/{PREFIX}"        # data: docker data-roots, etcd data, logs, image tarball
NS_DIR = f"{RUN}/ns"              # persistent mount/uts namespace files (a private mount)
STATE_FILE = f"{RUN}/state.json"
NETNS_DIR = "/run/netns"          # where `ip netns` keeps its namespace files
FABRIC_NETNS = f"{PREFIX}-fabric"
FABRIC_BRIDGE = "br0"
ETCD_DIR = f"{VAR}/etcd"
IMAGE_TAR = f"{VAR}/calico-net-test.tar"
SSH_DIR = f"{VAR}/ssh"          # the nodes' sshd keys and configs, the lab's client key


def netns_path(netns: str) -> str:
    return f"{NETNS_DIR}/{netns}"


@dataclass(frozen=True)
class NodePaths:
    """Per-node locations; `name` is the node's hostname."""
    name: str

    @property
    def netns(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def netns_file(self) -> str:
        return netns_path(self.netns)

    @property
    def mnt_file(self) -> str:
        return f"{NS_DIR}/{self.name}.mnt"

    @property
    def uts_file(self) -> str:
        return f"{NS_DIR}/{self.name}.uts"

    @property
    def run_dir(self) -> str:
        """Host-visible, and the same path inside the node (moved back over its private /run)."""
        return f"{RUN}/{self.name}"

    @property
    def var_dir(self) -> str:
        return f"{VAR}/{self.name}"

    @property
    def docker_sock(self) -> str:
        return f"{self.run_dir}/docker.sock"

    @property
    def data_root(self) -> str:
        return f"{self.var_dir}/docker"

    @property
    def etc_docker(self) -> str:
        return f"{self.var_dir}/etc-docker"

    @property
    def fabric_veth(self) -> str:
        """The fabric-side end of the node's eth0 (lives only in the fabric namespace)."""
        return f"v-{self.name}"[:15]

    @property
    def var_log(self) -> str:
        """The node's own /var/log (calicoctl node's --log-dir lives under it)."""
        return f"{self.var_dir}/var-log"

    def log(self, daemon: str) -> str:
        return f"{self.var_dir}/{daemon}.log"
