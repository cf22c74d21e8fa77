"""
Usage:
  calicoctl diags [--log-dir=<LOG_DIR>]

Description:
  Save diagnostic information

Options:
  --log-dir=<LOG_DIR>  The directory for logs [default: /var/log/calico]
"""
from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import traceback

from .common import datastore, enforce_root

BIRD_CTL = "/var/run/calico/bird.ctl"
TIMEOUT = 60

# (what is printed, the shell command, the file name if not derived from the command).
# Fixed strings only: nothing a user typed reaches these shell lines.
COMMANDS = (
    (None, "date", None),
    (None, "hostname", None),
    ("Dumping netstat", "netstat --all --numeric || ss --all --numeric", None),
    ("Dumping routes (IPv4)", "ip -4 route", None),
    ("Dumping routes (IPv6)", "ip -6 route", None),
    ("Dumping interface info (IPv4)", "ip -4 addr", None),
    ("Dumping interface info (IPv6)", "ip -6 addr", None),
    ("Dumping interface info (links)", "ip link", None),            # not in 0.22
    ("Dumping iptables (IPv4)", "iptables-save", None),
    ("Dumping iptables (IPv6)", "ip6tables-save", None),
    # 0.22's fallback for a host without ipset; `--privileged` cannot work on this VM
    ("Dumping ipsets", "ipset list || docker run --privileged --net=host -it calico/node ipset list",
     None),
    ("Copying journal for calico-node.service", "journalctl -u calico-node.service --no-pager",
     None),
    # not in 0.22: where the lab's calico-node and libnetwork driver log (their stdout) and
    # what BIRD says (the same socket `calicoctl status` asks)
    ("Copying logs of the calico-node container", "docker logs --timestamps calico-node",
     "docker_logs_calico-node"),
    ("Copying logs of the calico-libnetwork container",
     "docker logs --timestamps calico-libnetwork", "docker_logs_calico-libnetwork"),
    ("Dumping BIRD status (IPv4)", f"birdc -s {BIRD_CTL} show protocols all", "bird_protocols"),
    ("Dumping BIRD routes (IPv4)", f"birdc -s {BIRD_CTL} show route", "bird_routes"),
)


def run(args) -> int:
    enforce_root()                       # ipset and iptables need it
    print("Collecting diagnostics")
    save(args["--log-dir"])
    return 0


def file_name(command: str) -> str:
    """0.22's sanitising: drop a `|| fallback`, keep letters, digits, spaces and dashes,
    spaces become underscores ('ip -4 route' -> 'ip_-4_route')."""
    name = re.sub(r"\s*\|\|.*", "", command)
    name = re.sub(r"[^a-zA-Z0-9 -]", "", name)
    return re.sub(r"\s", "_", name)


def save(log_dir: str) -> str:
    temp_dir = tempfile.mkdtemp()        # 0700, unpredictable name
    out = os.path.join(temp_dir, "diagnostics")
    os.mkdir(out)
    print(f"Using temp dir: {temp_dir}")
    for comment, command, name in COMMANDS:
        if comment:
            print(comment)
        write_command(out, name or file_name(command), command)
    # 0.22 sent SIGUSR1 to every process named felix so Felix logged its stats; the lab's
    # Felix has no such handler (the signal would kill it) and a name match would reach other
    # labs' nodes on this machine, so that step is left out.
    if os.path.isdir(log_dir):
        print("Copying Calico logs")
        shutil.copytree(log_dir, os.path.join(out, "logs"), symlinks=True,
                        ignore=shutil.ignore_patterns("lock"))
    else:
        print(f"No logs found in {log_dir}; skipping log copying")
    print("Dumping datastore")
    with _guarded(out, "etcd_calico") as f:
        dump_datastore(f)
    tar_path = os.path.join(temp_dir, datetime.datetime.now().strftime("diags-%d%m%y_%H%M%S.tar.gz"))
    with tarfile.open(tar_path, "w:gz") as tar:
        # 0.22 added temp_dir as "", which gives a member named "/"; its contents are the same
        tar.add(out, arcname="diagnostics")
    print(f"\nDiags saved to {tar_path}\n")
    # 0.22 went on to suggest uploading the bundle to transfer.sh; nothing leaves the lab here
    return tar_path


def write_command(out: str, name: str, command: str) -> None:
    with _guarded(out, name) as f:
        cp = subprocess.run(command, shell=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT,
                            stdin=subprocess.DEVNULL)
        if cp.returncode == 0:
            f.write(cp.stdout)
        else:
            print(f"Problem running command: {command}\n  {cp.stdout}")
            f.write(f"Problem running command: {command}\n\n{cp.stdout}\n")


def dump_datastore(f) -> None:
    """Every node of /calico as 0.22 wrote it: 'DIR,  key,' or 'FILE, key, value'."""
    try:
        tree = datastore().client.read("/calico", recursive=True)
        f.write("dir?, key, value\n")
        for node in tree.get_subtree():
            f.write(f"DIR,  {node.key},\n" if node.dir else f"FILE, {node.key}, {node.value}\n")
    except Exception as exc:       # etcd unreachable, or a bad etcd configuration
        print("Unable to dump etcd datastore")
        f.write(f"Unable to dump etcd datastore: {exc}")


class _guarded:
    """Open out/name for writing; an error while filling it is written into it and
    swallowed, so one failing step never costs the rest (0.22's DiagsErrorWriter)."""

    def __init__(self, out: str, name: str) -> None:
        self.path = os.path.join(out, name)

    def __enter__(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        self.file = os.fdopen(fd, "w")
        return self.file

    def __exit__(self, exc_type, exc, tb) -> bool:
        swallow = exc_type is not None and not issubclass(exc_type, KeyboardInterrupt)
        if swallow:
            print("  - Error gathering diagnostics")
            self.file.write(f"\nError gathering diagnostics\nException: {exc_type}({exc})\n")
            traceback.print_tb(tb, None, self.file)
        self.file.close()
        return swallow
