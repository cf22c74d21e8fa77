"""Versions of what a lab runs, for `lab status` and the report's environment table."""
from __future__ import annotations

import json
import os
import urllib.request
from typing import Callable

from . import docker_api, netns, paths
from .state import LabState


def lab_versions(st: LabState, in_mgmt: bool = False) -> dict[str, str]:
    """{component: version line}; in_mgmt says the caller already is in the management netns."""
    found: dict[str, str] = {}
    for node in st.topology.node_names:
        def info(node=node):
            with docker_api.connect(paths.NodePaths(node).docker_sock, timeout=3) as c:
                return c.version(), c.info()
        found[f"docker@{node}"] = docker_line(info)
    url = st.topology.etcd_url
    if in_mgmt:
        found["etcd"] = etcd_line(lambda: _etcd_version(url), url)
    else:
        with netns.inside(st.mgmt_netns_file):
            found["etcd"] = etcd_line(lambda: _etcd_version(url), url)
    found["kernel"] = os.uname().release
    return found


def docker_line(version_and_info: Callable[[], tuple[dict, dict]], errors=()) -> str:
    """One Docker engine in a line: version, API, cluster store and advertise address."""
    try:
        v, info = version_and_info()
    except (*docker_api.ERRORS, *errors) as exc:
        return f"unreachable ({type(exc).__name__})"
    return (f"{v['Version']} (API {v['ApiVersion']}), cluster store "
            f"{info.get('ClusterStore') or 'none'}, advertise {info.get('ClusterAdvertise') or 'none'}")


def etcd_line(version: Callable[[], dict], url: str) -> str:
    try:
        ev = version()
    except (OSError, ValueError) as exc:
        return f"unreachable at {url} ({exc})"
    return f"{ev.get('etcdserver')} (cluster {ev.get('etcdcluster')}) at {url}"


def _etcd_version(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/version", timeout=2) as r:
        return json.load(r)
