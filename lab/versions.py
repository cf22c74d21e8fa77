"""Versions of what a lab runs, for `lab status` and the report's environment table."""
from __future__ import annotations

import json
import os
import urllib.request

from . import docker_api, netns, paths
from .state import LabState


def lab_versions(st: LabState, in_mgmt: bool = False) -> dict[str, str]:
    """{component: version line}; in_mgmt says the caller already is in the management netns."""
    found: dict[str, str] = {}
    for node in st.topology.node_names:
        try:
            with docker_api.connect(paths.NodePaths(node).docker_sock, timeout=3) as c:
                v, info = c.version(), c.info()
            found[f"docker@{node}"] = (
                f"{v['Version']} (API {v['ApiVersion']}), cluster store "
                f"{info.get('ClusterStore') or 'none'}, advertise {info.get('ClusterAdvertise') or 'none'}")
        except docker_api.ERRORS as exc:
            found[f"docker@{node}"] = f"unreachable ({type(exc).__name__})"
    try:
        if in_mgmt:
            ev = _etcd_version(st)
        else:
            with netns.inside(st.mgmt_netns_file):
                ev = _etcd_version(st)
        found["etcd"] = f"{ev.get('etcdserver')} (cluster {ev.get('etcdcluster')}) at {st.topology.etcd_url}"
    except (OSError, ValueError) as exc:
        found["etcd"] = f"unreachable at {st.topology.etcd_url} ({exc})"
    found["kernel"] = os.uname().release
    return found


def _etcd_version(st: LabState) -> dict:
    with urllib.request.urlopen(f"{st.topology.etcd_url}/version", timeout=2) as r:
        return json.load(r)
