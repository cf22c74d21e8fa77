"""Docker SDK clients for a node's dockerd, reached through its host-visible unix socket."""
from __future__ import annotations

import contextlib
from typing import Iterator

import docker
import requests
from docker.errors import DockerException, NotFound  # noqa: F401  (re-exported)

# what a dead or hung daemon raises through the SDK: catch these, not DockerException alone
ERRORS = (DockerException, requests.exceptions.RequestException)

API_VERSION = "1.41"   # Debian's docker.io 20.10; pinned so no version round trip per client


def client(sock: str, timeout: float = 30) -> docker.DockerClient:
    return docker.DockerClient(base_url=f"unix://{sock}", version=API_VERSION, timeout=timeout)


@contextlib.contextmanager
def connect(sock: str, timeout: float = 30) -> Iterator[docker.DockerClient]:
    c = client(sock, timeout)
    try:
        yield c
    finally:
        c.close()
