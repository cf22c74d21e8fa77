"""python-etcd (v2 API) clients for a lab's datastore: plain HTTP or TLS, one or more endpoints.

The embedded lab's etcd is one plain endpoint; a real lab's inventory may list several, over
https with a CA and a client certificate. Either way the suites get an `etcd.Client`.
"""
from __future__ import annotations

import json
import ssl
import urllib.parse
import urllib.request
from typing import Sequence

import etcd

from .errors import LabError


def _split(endpoints: Sequence[str]) -> tuple[str, tuple[tuple[str, int], ...]]:
    schemes, hosts = set(), []
    for url in endpoints:
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise LabError(f"etcd endpoint {url!r}: expected http(s)://host:port")
        schemes.add(u.scheme)
        hosts.append((u.hostname, u.port or 2379))
    if len(schemes) != 1:
        raise LabError(f"etcd endpoints {', '.join(endpoints)}: mixed http and https")
    return schemes.pop(), tuple(hosts)


def client(endpoints: Sequence[str], ca_file: str | None = None, cert_file: str | None = None,
           key_file: str | None = None, timeout: float = 5) -> etcd.Client:
    """A v2 client for these endpoints (the first that answers; the others on reconnect)."""
    scheme, hosts = _split(endpoints)
    tls = {}
    if scheme == "https":
        if ca_file:
            tls["ca_cert"] = ca_file
        if cert_file:
            tls["cert"] = (cert_file, key_file)
    host = hosts[0][0] if len(hosts) == 1 else hosts
    return etcd.Client(host=host, port=hosts[0][1], protocol=scheme, read_timeout=timeout,
                       allow_reconnect=len(hosts) > 1, **tls)


def version(endpoints: Sequence[str], ca_file: str | None = None, cert_file: str | None = None,
            key_file: str | None = None, timeout: float = 2) -> dict:
    """GET /version of the first endpoint ({"etcdserver": …, "etcdcluster": …})."""
    url = endpoints[0].rstrip("/") + "/version"
    ctx = None
    if url.startswith("https:"):
        ctx = ssl.create_default_context(cafile=ca_file)
        if cert_file:
            ctx.load_cert_chain(cert_file, key_file)
    # directly, as python-etcd does: never through a proxy named in the environment
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=ctx))
    with opener.open(url, timeout=timeout) as r:
        return json.load(r)
