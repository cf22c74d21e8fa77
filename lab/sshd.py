"""An OpenSSH server on every node of the embedded lab, so it can be reached as a real lab is.

Each node runs Debian's `/usr/sbin/sshd -D -e -f <its config>` inside its network, mount and
UTS namespaces, listening on its fabric address, port 22, only. Nothing of the host's
/etc/ssh or /root/.ssh is used or changed; everything lives under paths.SSH_DIR:

    <VAR>/ssh/id_ed25519, id_ed25519.pub   the lab's client key pair (root may log in with it)
    <VAR>/ssh/authorized_keys              that public key, for every node
    <VAR>/ssh/known_hosts                  one line per node: `<ip> ssh-ed25519 AAAA…`
    <VAR>/ssh/<node>/ssh_host_ed25519_key  the node's own host key (+ .pub)
    <VAR>/ssh/<node>/sshd_config           the node's server configuration

Privilege separation needs /run/sshd: the node's /run is a private tmpfs of its mount
namespace (lab/builder.py makes the directory there), so the host's /run is not touched.
A session gets what a tutorial root shell on the node has (lab.transport.tutorial_env):
`docker` reaches the node's own dockerd (/var/run/docker.sock inside the node), `calicoctl`
is on PATH, ETCD_AUTHORITY names the lab's etcd.

`python -m lab inventory` reads `lab_ssh_material(state)`: the client key, the known_hosts
file and where each node listens.
"""
from __future__ import annotations

import ipaddress
import os
import socket
import time
from dataclasses import dataclass, field

from . import netns, paths
from .errors import LabError
from .proc import spawn
from .state import LabState
from .topology import Topology
from .transport import node_exec_argv, tutorial_env

SSHD = "/usr/sbin/sshd"
SSH_PORT = 22
CLIENT_KEY = f"{paths.SSH_DIR}/id_ed25519"
AUTHORIZED_KEYS = f"{paths.SSH_DIR}/authorized_keys"
KNOWN_HOSTS = f"{paths.SSH_DIR}/known_hosts"


@dataclass(frozen=True)
class SshMaterial:
    """What an SSH client needs to reach every node of the running lab as root."""
    key_file: str                                   # private key, no passphrase
    known_hosts: str                                # one `<ip> ssh-ed25519 …` line per node
    hosts: dict[str, tuple[str, int]] = field(default_factory=dict)   # node -> (ip, port)


def node_dir(node: str) -> str:
    return f"{paths.SSH_DIR}/{node}"


def host_key_file(node: str) -> str:
    return f"{node_dir(node)}/ssh_host_ed25519_key"


def config_file(node: str) -> str:
    return f"{node_dir(node)}/sshd_config"


def daemon_key(node: str) -> str:
    return f"sshd@{node}"


def _address(ip: str, port: int) -> str:
    """`ip:port` as sshd's ListenAddress and known_hosts spell it (brackets for IPv6)."""
    return f"[{ip}]:{port}" if ipaddress.ip_address(ip).version == 6 else f"{ip}:{port}"


def _known_hosts_name(ip: str, port: int) -> str:
    return ip if port == 22 else f"[{ip}]:{port}"


# -- key material and configuration ----------------------------------------------------------

def _write_private(path: str, data: bytes) -> None:
    """A new file, mode 0600 from its first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _new_key(path: str, comment: str) -> str:
    """An ed25519 key pair at path (+ .pub) in OpenSSH format; returns the public line."""
    # imported here: readers of lab_ssh_material (the inventory) don't pay for it
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.generate()
    _write_private(path, key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.OpenSSH,
                                           serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    with open(f"{path}.pub", "w") as f:
        f.write(f"{public} {comment}\n")
    return public


def _set_env_line(topology: Topology) -> str:
    """One SetEnv line (sshd honours only the first) with the tutorial shell's environment."""
    words = []
    for name, value in sorted(tutorial_env(topology).items()):
        if any(c in value for c in '"\\\n'):
            raise LabError(f"cannot hand {name}={value!r} to sshd's SetEnv (quote, backslash "
                           "or newline); move the project to a plainer path")
        words.append(f'"{name}={value}"')
    return "SetEnv " + " ".join(words)


def config_text(topology: Topology, node: str) -> str:
    ip = topology.node(node).ip
    return "\n".join([
        f"# sshd of lab node {node}, written by lab/sshd.py (the host's /etc/ssh is not read)",
        f"ListenAddress {_address(ip, SSH_PORT)}",
        f"HostKey {host_key_file(node)}",
        "PidFile none",
        "UsePAM no",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        f"AuthorizedKeysFile {AUTHORIZED_KEYS}",
        "StrictModes yes",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        "Subsystem sftp internal-sftp",
        _set_env_line(topology),
        "",
    ])


def prepare(topology: Topology) -> None:
    """Keys, authorized_keys, known_hosts and one config per node, all new."""
    os.makedirs(paths.SSH_DIR, mode=0o700, exist_ok=True)
    client = _new_key(CLIENT_KEY, f"root@{paths.PREFIX}-lab")
    _write_private(AUTHORIZED_KEYS, f"{client} root@{paths.PREFIX}-lab\n".encode())
    known = []
    for n in topology.nodes:
        os.makedirs(node_dir(n.name), mode=0o700, exist_ok=True)
        public = _new_key(host_key_file(n.name), f"root@{n.name}")
        known.append(f"{_known_hosts_name(n.ip, SSH_PORT)} {public}\n")
        with open(config_file(n.name), "w") as f:
            f.write(config_text(topology, n.name))
    with open(KNOWN_HOSTS, "w") as f:
        f.writelines(known)


# -- the daemons ----------------------------------------------------------------------------

def start(st: LabState) -> None:
    """Write the key material (on a first start) and spawn sshd on every node at once; they
    are not waited for here: `wait_ready` does that, from the management namespace."""
    if not os.path.exists(KNOWN_HOSTS):
        prepare(st.topology)
    for node in st.topology.node_names:
        argv = [SSHD, "-D", "-e", "-f", config_file(node)]
        st.daemons[daemon_key(node)] = spawn(daemon_key(node), node_exec_argv(node, argv),
                                             paths.NodePaths(node).log("sshd"))


def _greets(ip: str, port: int) -> bool:
    """True once sshd accepts and sends its `SSH-2.0-` banner. The check answers with a
    banner of its own and closes cleanly, so the node's sshd.log shows one plain
    `Connection closed by <mgmt ip> … [preauth]` line instead of a reset."""
    try:
        with socket.create_connection((ip, port), timeout=1) as s:
            if not s.recv(256).startswith(b"SSH-2.0-"):
                return False
            s.sendall(b"SSH-2.0-lab-ready-check\r\n")
            s.shutdown(socket.SHUT_WR)
            while s.recv(4096):
                pass
            return True
    except OSError:
        return False


def wait_ready(st: LabState, timeout: float = 15) -> None:
    """Until every node's sshd greets a client on the fabric, as seen from the management
    namespace (the calling thread enters it, and comes back)."""
    deadline = time.monotonic() + timeout
    with netns.inside(st.mgmt_netns_file):
        for node in st.topology.nodes:
            daemon, log = st.daemons[daemon_key(node.name)], paths.NodePaths(node.name).log("sshd")
            while not _greets(node.ip, SSH_PORT):
                if not daemon.alive():
                    raise LabError(f"sshd on {node.name} exited; see {log}")
                if time.monotonic() >= deadline:
                    raise LabError(f"timed out after {timeout:g}s waiting for sshd on "
                                   f"{node.name} (log: {log})")
                time.sleep(0.02)


# -- for clients (`python -m lab inventory`, the SSH transport's tests) -----------------------

def lab_ssh_material(st: LabState) -> SshMaterial:
    """The client key, the known_hosts file and each node's (ip, port) of the running lab."""
    for f in (CLIENT_KEY, KNOWN_HOSTS):
        if not os.path.exists(f):
            raise LabError(f"this lab has no SSH material ({f} is missing): bring it up again "
                           "with `python -m lab down` and `python -m lab up`")
    return SshMaterial(key_file=CLIENT_KEY, known_hosts=KNOWN_HOSTS,
                       hosts={n.name: (n.ip, SSH_PORT) for n in st.topology.nodes})
