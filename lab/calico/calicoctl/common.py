"""What every calicoctl 0.x command shares: datastore, hostname, docker, names (spec §3.1)."""
from __future__ import annotations

import ipaddress
import os
import re
import socket
import sys
import textwrap
from typing import NoReturn

from ..datastore import Datastore

NAME_RE = re.compile(r"^[a-zA-Z0-9_.\-]+$")
NAME_MESSAGE = ("Profile names must be < 40 character long and can only contain numbers, "
                "letters, dots, dashes and underscores.")


def fail(message: str, code: int = 1) -> NoReturn:
    print(message)
    sys.exit(code)


def paragraph(message: str) -> None:
    """calicoctl's print_paragraph: wrapped at 80 columns, then an empty line."""
    print("\n".join(textwrap.wrap(message, width=80)))
    print()


def enforce_root() -> None:
    """calicoctl's enforce_root: the message on stderr and exit code 2."""
    if os.geteuid() != 0:
        print("This command must be run as root.", file=sys.stderr)
        sys.exit(2)


def hostname() -> str:
    """$HOSTNAME if exported, else gethostname() (libcalico get_hostname)."""
    return os.environ.get("HOSTNAME") or socket.gethostname()


def datastore() -> Datastore:
    return Datastore.from_env(os.environ)


def docker_client(timeout: float = 30):
    """The local Docker daemon, as calicoctl found it: DOCKER_HOST or the default socket."""
    import docker
    return docker.DockerClient(base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
                               version="auto", timeout=timeout)


def validate_name(name: str) -> None:
    if not NAME_RE.match(name):
        fail(NAME_MESSAGE)


def parse_ip(text: str, version: int | None = None):
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if version is not None and ip.version != version:
        return None
    return ip


def validate_asn(text: str) -> str | None:
    """Plain 0..4294967295 or dotted a.b (each 0..65535); returned as asplain (spec §3.6)."""
    if re.fullmatch(r"\d+", text or ""):
        value = int(text)
        return str(value) if value <= 4294967295 else None
    m = re.fullmatch(r"(\d+)\.(\d+)", text or "")
    if m and int(m.group(1)) <= 65535 and int(m.group(2)) <= 65535:
        return str(int(m.group(1)) * 65536 + int(m.group(2)))
    return None
