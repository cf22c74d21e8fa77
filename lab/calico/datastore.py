"""The Calico v1 datastore writer/reader of the reference node (libcalico 0.17 `DatastoreClient`).

Writes the exact etcd v2 keys and JSON values of spec §1 (calicoctl 0.21/0.22, libnetwork plugin
0.9, calico/node start-up) and reads them back as `model` objects. `snapshot()` reads the whole
/calico tree at once for the Felix agent and the BIRD config generator; `wait_for_change()` is
the long-poll that wakes them up.

JSON values are written with `json.dumps` defaults (", " and ": " separators, as Python
libcalico did); key order inside a value follows the spec's listings.
"""
from __future__ import annotations

import functools
import ipaddress
import json
import os
import re
import socket
import uuid
from typing import Iterable, Mapping

import etcd

from . import keys, model

ETCD_AUTHORITY_DEFAULT = "127.0.0.1:2379"

# Values written by ensure_global_config() (spec §1.2), each only if absent.
GLOBAL_DEFAULTS = (
    (keys.config("InterfacePrefix"), "cali"),
    (f"{keys.BGP_GLOBAL}/as_num", model.DEFAULT_AS),
    (f"{keys.BGP_GLOBAL}/node_mesh", json.dumps({"enabled": True})),
    (keys.config("LogSeverityFile"), "none"),
    (keys.config("LogSeverityScreen"), "info"),
    (keys.config("LogFilePath"), "none"),
    (keys.config("IpInIpEnabled"), "false"),
    (keys.config("ReportingIntervalSecs"), "0"),
)

_HOSTPORT_RE = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.\-]+):(?P<port>[0-9]{1,5})$")


class DatastoreError(Exception):
    """etcd unreachable or misbehaving, or a bad etcd configuration; str() is the whole story."""


class NotFound(DatastoreError, KeyError):
    """The named object (pool, profile, peer, endpoint, host) is not in the datastore."""

    def __str__(self) -> str:            # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def get_hostname() -> str:
    """The Calico hostname: $HOSTNAME if exported, else gethostname() (spec §0.4, §3.1)."""
    return os.environ.get("HOSTNAME") or socket.gethostname()


def etcd_errors(fn):
    """libcalico's `handle_errors`: no raw etcd exception leaks out of the public API (this
    module's, and that of ipam, which builds on it)."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except etcd.EtcdException as e:
            raise DatastoreError(f"{fn.__name__}: Error accessing etcd ({e}).  "
                                 "Is etcd running?") from e
    return wrapped


def _loads(text):
    """JSON or None (missing or malformed values are treated as absent, as Felix does)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _norm_cidr(cidr: str) -> str:
    return str(ipaddress.ip_network(str(cidr), strict=False))


def _net_sort_key(cidr: str):
    n = ipaddress.ip_network(cidr, strict=False)
    return (n.version, int(n.network_address), n.prefixlen)


def _ip_sort_key(ip: str):
    try:
        a = ipaddress.ip_address(ip)
        return (a.version, int(a), ip)
    except ValueError:
        return (9, 0, ip)


def _version_of(ip: str) -> int:
    return ipaddress.ip_address(str(ip)).version


def _str_pairs(d) -> tuple[tuple[str, str], ...] | None:
    if not isinstance(d, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                          for k, v in d.items()):
        return None
    return tuple(sorted(d.items()))


def _str_list(v) -> tuple[str, ...] | None:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        return None
    return tuple(v)


# -- parsing of stored values (shared by the single-object getters and snapshot()) ---------

def parse_pool(text: str) -> model.Pool | None:
    d = _loads(text)
    if not isinstance(d, dict) or not isinstance(d.get("cidr"), str):
        return None
    try:
        cidr = _norm_cidr(d["cidr"])
    except ValueError:
        return None
    return model.Pool(cidr=cidr, ipip=bool(d.get("ipip")), masquerade=bool(d.get("masquerade")),
                      ipam=d.get("ipam", True) is not False,
                      disabled=bool(d.get("disabled", False)))


def pool_json(pool: model.Pool) -> str:
    """`IPPool.to_json()` (spec §1.6): optional fields only when they differ from the default."""
    d: dict = {"cidr": _norm_cidr(pool.cidr)}
    if pool.ipip:
        d["ipip"] = "tunl0"
    if pool.masquerade:
        d["masquerade"] = True
    if not pool.ipam:
        d["ipam"] = False
    if pool.disabled:
        d["disabled"] = True
    return json.dumps(d)


def endpoint_json(ep: model.Endpoint) -> str:
    """`Endpoint.to_json()` of libcalico >= 0.14 (spec §1.4): exactly these seven fields."""
    return json.dumps({"state": ep.state, "name": ep.name, "mac": ep.mac,
                       "profile_ids": list(ep.profile_ids), "labels": dict(ep.labels),
                       "ipv4_nets": sorted(ep.ipv4_nets), "ipv6_nets": sorted(ep.ipv6_nets)})


_ENDPOINT_KEY_RE = re.compile(r"^/calico/v1/host/(?P<hostname>[^/]+)/workload/(?P<orch>[^/]+)/"
                              r"(?P<workload>[^/]+)/endpoint/(?P<endpoint_id>[^/]+)$")


def parse_endpoint(key: str, text: str) -> model.Endpoint | None:
    """An endpoint from its key and JSON, or None if either is not one (structure only; Felix's
    value checks — name prefix, MAC, id regexes — are the agent's business)."""
    m = _ENDPOINT_KEY_RE.match(key)
    d = _loads(text)
    if m is None or not isinstance(d, dict):
        return None
    profile_ids = d.get("profile_ids")
    if profile_ids is None and "profile_id" in d:          # legacy single profile (spec §1.4)
        profile_ids = [d["profile_id"]] if d["profile_id"] else []
    profile_ids = _str_list(profile_ids if profile_ids is not None else [])
    v4 = _str_list(d.get("ipv4_nets", []) or [])
    v6 = _str_list(d.get("ipv6_nets", []) or [])
    labels = _str_pairs(d.get("labels", {}) or {})
    name, state, mac = d.get("name"), d.get("state"), d.get("mac", "")
    if (profile_ids is None or v4 is None or v6 is None or labels is None
            or not isinstance(name, str) or not isinstance(state, str)
            or not isinstance(mac, (str, type(None)))):
        return None
    return model.Endpoint(hostname=m["hostname"], orchestrator_id=m["orch"],
                          workload_id=m["workload"], endpoint_id=m["endpoint_id"], name=name,
                          mac=mac or "", profile_ids=profile_ids, ipv4_nets=v4, ipv6_nets=v6,
                          state=state, labels=labels)


def parse_rules(text) -> tuple[tuple[dict, ...], tuple[dict, ...]] | None:
    d = _loads(text)
    if not isinstance(d, dict):
        return None
    # a missing list means [] (spec §2.1)
    inbound, outbound = d.get("inbound_rules", []), d.get("outbound_rules", [])
    if not (isinstance(inbound, list) and isinstance(outbound, list)
            and all(isinstance(r, dict) for r in inbound + outbound)):
        return None
    return tuple(inbound), tuple(outbound)


def parse_profile(name: str, tags_text, rules_text, labels_text) -> model.Profile | None:
    """A profile needs valid rules (Felix drops a profile whose rules are missing or invalid);
    missing or invalid tags/labels count as none."""
    rules = parse_rules(rules_text)
    if rules is None:
        return None
    tags = _str_list(_loads(tags_text)) or ()
    labels = _str_pairs(_loads(labels_text)) or ()
    return model.Profile(name=name, tags=tags, inbound=rules[0], outbound=rules[1], labels=labels)


def parse_peer(text, ip_from_key: str | None = None) -> model.Peer | None:
    d = _loads(text)
    if not isinstance(d, dict) or d.get("as_num") in (None, ""):
        return None
    ip = d.get("ip") or ip_from_key
    if not isinstance(ip, str) or isinstance(d["as_num"], (dict, list, bool)):
        return None
    return model.Peer(ip=ip, as_num=str(d["as_num"]))


def parse_block(text) -> model.Block | None:
    d = _loads(text)
    try:
        affinity = d["affinity"] or ""
        allocations = tuple(d["allocations"])
        unallocated = d.get("unallocated")
        if unallocated is None:       # blocks from before `unallocated` existed
            unallocated = [o for o, a in enumerate(allocations) if a is None]
        attributes = tuple(d.get("attributes") or ())
        if not all(a is None or (isinstance(a, int) and not isinstance(a, bool))
                   for a in allocations) or not all(isinstance(o, int) for o in unallocated):
            return None
        host = (affinity[5:] or None) if affinity.startswith("host:") else None
        return model.Block(cidr=_norm_cidr(d["cidr"]), affinity=host,
                           allocations=allocations, unallocated=tuple(unallocated),
                           strict_affinity=bool(d.get("strict_affinity", False)),
                           attributes=attributes)
    except (TypeError, KeyError, ValueError, AttributeError):
        return None


def parse_node_mesh(text) -> bool:
    d = _loads(text)
    if isinstance(d, dict) and isinstance(d.get("enabled"), bool):
        return d["enabled"]
    return True                       # absent (or unreadable) = enabled


class Datastore:
    """libcalico 0.17 `DatastoreClient` over a python-etcd client (etcd v2 API)."""

    def __init__(self, client: etcd.Client):
        self.client = client

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, read_timeout: int = 30) -> "Datastore":
        """etcd location as calicoctl/libcalico read it (spec §3.1): ETCD_ENDPOINTS, else
        ETCD_AUTHORITY + ETCD_SCHEME; TLS from ETCD_KEY_FILE/ETCD_CERT_FILE/ETCD_CA_CERT_FILE."""
        env = os.environ if env is None else env
        endpoints = env.get("ETCD_ENDPOINTS", "").strip()
        key_file = env.get("ETCD_KEY_FILE", "")
        cert_file = env.get("ETCD_CERT_FILE", "")
        ca_file = env.get("ETCD_CA_CERT_FILE", "")
        addrs: list[str] = []
        if endpoints:
            scheme = None
            addr_env = scheme_env = "ETCD_ENDPOINTS"
            for e in (x.strip() for x in endpoints.split(",")):
                s, sep, a = e.partition("://")
                if not sep:
                    raise DatastoreError(
                        "Invalid ETCD_ENDPOINTS. It must take the form "
                        "'ENDPOINT[,ENDPOINT][,...]' where ENDPOINT:='http[s]://ADDRESS:PORT'. "
                        f"Value provided is '{endpoints}'")
                if scheme is not None and s != scheme:
                    raise DatastoreError("Inconsistent protocols in ETCD_ENDPOINTS.  Value "
                                         f"provided is '{endpoints}'")
                scheme = s
                addrs.append(a.rstrip("/"))
        else:
            addr_env, scheme_env = "ETCD_AUTHORITY", "ETCD_SCHEME"
            addrs.append(env.get("ETCD_AUTHORITY", "") or ETCD_AUTHORITY_DEFAULT)
            scheme = env.get("ETCD_SCHEME", "") or "http"
        hostports = []
        for a in addrs:
            m = _HOSTPORT_RE.match(a)
            if not m or not 0 < int(m["port"]) < 65536:
                raise DatastoreError(f"Invalid {addr_env}. Address must take the form "
                                     f"<address>:<port>. Value provided is '{a}'")
            hostports.append((m["host"], int(m["port"])))
        if scheme == "https":
            if bool(key_file) != bool(cert_file):
                raise DatastoreError(
                    "Invalid ETCD_KEY_FILE, ETCD_CERT_FILE combination. Key and certificate must "
                    "both be specified or both be blank. Values provided: "
                    f"ETCD_KEY_FILE={key_file}, ETCD_CERT_FILE={cert_file}")
            if key_file and not all(os.path.isfile(f) and os.access(f, os.R_OK)
                                    for f in (key_file, cert_file)):
                raise DatastoreError(
                    "Cannot read ETCD_KEY_FILE and/or ETCD_CERT_FILE. Both must be readable file "
                    f"paths. Values provided: ETCD_KEY_FILE={key_file}, ETCD_CERT_FILE={cert_file}")
            if not ca_file or not (os.path.isfile(ca_file) and os.access(ca_file, os.R_OK)):
                raise DatastoreError(
                    "Invalid ETCD_CA_CERT_FILE. Certificate Authority cert is required and must "
                    f"be a readable file path. Value provided: {ca_file}")
        elif scheme != "http":
            raise DatastoreError(f'Invalid {scheme_env}. Value must be one of: "", "http", '
                                 f'"https". Value provided: {scheme}')
        kw = dict(protocol=scheme, read_timeout=read_timeout,
                  cert=(cert_file, key_file) if (scheme == "https" and cert_file) else None,
                  ca_cert=ca_file if scheme == "https" else None)
        try:
            if len(hostports) > 1:
                client = etcd.Client(host=tuple(hostports), allow_reconnect=True, **kw)
            else:
                client = etcd.Client(host=hostports[0][0], port=hostports[0][1], **kw)
        except etcd.EtcdException as e:
            raise DatastoreError(f"Error accessing etcd ({e}).  Is etcd running?") from e
        return cls(client)

    def is_reachable(self) -> bool:
        """True if etcd answers (startup's WAIT_FOR_DATASTORE loop)."""
        try:
            self.client.read("/", timeout=5)
            return True
        except etcd.EtcdException:
            return False

    # -- small helpers -----------------------------------------------------------------------
    def _get(self, key: str) -> str | None:
        try:
            return self.client.read(key).value
        except etcd.EtcdKeyNotFound:
            return None

    def _delete(self, key: str, recursive: bool = False) -> bool:
        try:
            if recursive:
                self.client.delete(key, recursive=True, dir=True)
            else:
                self.client.delete(key)
            return True
        except etcd.EtcdKeyNotFound:
            return False

    def _mkdir(self, key: str) -> None:
        try:
            self.client.write(key, None, dir=True)
        except (etcd.EtcdNotFile, etcd.EtcdAlreadyExist):
            pass                                   # already there

    def _leaves(self, key: str) -> list:
        """(key, value) of every value under `key`, [] if it does not exist."""
        try:
            result = self.client.read(key, recursive=True)
        except etcd.EtcdKeyNotFound:
            return []
        return [(leaf.key, leaf.value) for leaf in result.leaves if not leaf.dir]

    def _child_names(self, key: str) -> list[str]:
        try:
            result = self.client.read(key)
        except etcd.EtcdKeyNotFound:
            return []
        prefix = key.rstrip("/") + "/"
        return sorted(c.key[len(prefix):] for c in result.leaves     # direct children here
                      if c.key and c.key.startswith(prefix))

    # -- node start (spec §0.3, §1.2, §1.3) --------------------------------------------------
    @etcd_errors
    def ensure_global_config(self, hostname: str | None = None) -> None:
        """Global defaults, each only if absent; IPAM/pool dirs; ClusterGUID; Ready (always)."""
        hostname = hostname or get_hostname()
        self._write_if_absent(*GLOBAL_DEFAULTS[0])
        for version in (4, 6):
            self._mkdir(f"{keys.IPAM_HOSTS}/{hostname}/ipv{version}/block")
            self._mkdir(f"/calico/v1/ipam/v{version}/pool")
        for key, value in GLOBAL_DEFAULTS[1:]:
            self._write_if_absent(key, value)
        if self._get(keys.config("ClusterGUID")) is None:
            try:
                self.client.write(keys.config("ClusterGUID"), uuid.uuid4().hex, prevExist=False)
            except etcd.EtcdAlreadyExist:
                pass
        self.client.write(keys.READY, "true")

    def _write_if_absent(self, key: str, value: str) -> None:
        if self._get(key) is None:
            try:
                self.client.write(key, value, prevExist=False)
            except etcd.EtcdAlreadyExist:
                pass

    @etcd_errors
    def create_host(self, hostname: str, ip: str, ip6: str | None = None,
                    as_num: str | None = None) -> None:
        """Per-host keys of spec §1.3."""
        self.client.write(keys.bird_ip(hostname), ip)
        self.client.write(keys.bgp_host(hostname, "ip_addr_v4"), ip)
        self.client.write(keys.bgp_host(hostname, "ip_addr_v6"), ip6 or "")
        self._mkdir(f"{keys.host(hostname)}/workload")
        if as_num is None or as_num == "":
            self._delete(keys.bgp_host(hostname, "as_num"))
        else:
            self.client.write(keys.bgp_host(hostname, "as_num"), str(as_num))
        # libcalico keeps an operator-set value here; a new host gets RETURN.
        if self._get(keys.host_config(hostname, "DefaultEndpointToHostAction")) is None:
            self.client.write(keys.host_config(hostname, "DefaultEndpointToHostAction"), "RETURN")
        self.client.write(keys.host_config(hostname, "marker"), "created")

    @etcd_errors
    def hostname_for_ip(self, ip: str, exclude: str | None = None) -> str | None:
        """Which host registered `ip` as its BGP address (ip_addr_v4/ip_addr_v6), ignoring the
        host `exclude`; the first by name if several did; None if none did."""
        found = []
        for key, value in self._leaves(keys.BGP_HOSTS):
            parts = key.split("/")
            if (len(parts) == 7 and parts[6] in ("ip_addr_v4", "ip_addr_v6") and value
                    and value == ip and parts[5] != exclude):
                found.append(parts[5])
        return min(found) if found else None

    @etcd_errors
    def remove_host(self, hostname: str) -> None:
        """`calicoctl node remove` datastore part: the host's BGP and v1 trees. Its IPAM
        data (Ipam.remove_ipam_host) and endpoint IPs are the caller's to release first."""
        self._delete(keys.bgp_host(hostname), recursive=True)
        self._delete(keys.host(hostname), recursive=True)

    @etcd_errors
    def hosts(self) -> list[str]:
        """Hostnames registered under /calico/v1/host or /calico/bgp/v1/host."""
        return sorted(set(self._child_names(keys.HOSTS)) | set(self._child_names(keys.BGP_HOSTS)))

    # -- Felix config (spec §1.9) ------------------------------------------------------------
    @etcd_errors
    def set_config(self, name: str, value: str | None, hostname: str | None = None) -> None:
        """Global (or per-host) Felix config; None deletes the key."""
        key = keys.host_config(hostname, name) if hostname else keys.config(name)
        if value is None:
            self._delete(key)
        else:
            self.client.write(key, str(value))

    @etcd_errors
    def report_felix_status(self, hostname: str, status: Mapping, ttl: int) -> None:
        """Felix 1.4's two status keys: last_reported_status (kept) and status (expires)."""
        value = json.dumps(status)
        self.client.write(f"{keys.FELIX_HOSTS}/{hostname}/last_reported_status", value)
        self.client.write(f"{keys.FELIX_HOSTS}/{hostname}/status", value, ttl=int(ttl))

    @etcd_errors
    def get_config(self, name: str, hostname: str | None = None) -> str | None:
        return self._get(keys.host_config(hostname, name) if hostname else keys.config(name))

    # -- pools (spec §1.6) --------------------------------------------------------------------
    @staticmethod
    def _pool_key(cidr: str) -> str:
        net = ipaddress.ip_network(str(cidr), strict=False)
        base = keys.POOLS_V4 if net.version == 4 else keys.POOLS_V6
        return f"{base}/{keys.cidr_key(str(net))}"

    @etcd_errors
    def pools(self, version: int = 4) -> list[model.Pool]:
        base = keys.POOLS_V4 if version == 4 else keys.POOLS_V6
        found = [parse_pool(v) for _, v in self._leaves(base) if v]
        return sorted((p for p in found if p is not None), key=lambda p: _net_sort_key(p.cidr))

    @etcd_errors
    def get_pool(self, cidr: str) -> model.Pool | None:
        text = self._get(self._pool_key(cidr))
        return parse_pool(text) if text else None

    @etcd_errors
    def add_pool(self, pool: model.Pool) -> None:
        """Write (or rewrite) a pool; an IPIP pool also sets IpInIpEnabled=true."""
        if pool.ipip and self._get(keys.config("IpInIpEnabled")) != "true":
            self.client.write(keys.config("IpInIpEnabled"), "true")
        self.client.write(self._pool_key(pool.cidr), pool_json(pool))

    @etcd_errors
    def remove_pool(self, cidr: str) -> None:
        """Delete the pool key only (calicoctl's disable/sleep/release dance is its own)."""
        if not self._delete(self._pool_key(cidr)):
            raise NotFound(f"{_norm_cidr(cidr)} is not a configured pool.")

    # -- profiles (spec §1.5) -----------------------------------------------------------------
    @etcd_errors
    def profile_exists(self, name: str) -> bool:
        return self._exists(keys.profile(name))

    def _exists(self, key: str) -> bool:
        try:
            self.client.read(key)
            return True
        except etcd.EtcdKeyNotFound:
            return False

    @etcd_errors
    def create_profile(self, name: str) -> None:
        """tags [name], labels {}, rules: allow inbound from own tag, allow all outbound.
        Overwrites an existing profile of that name (as libcalico did)."""
        base = keys.profile(name)
        self.client.write(f"{base}/tags", json.dumps([name]))
        self.client.write(f"{base}/labels", json.dumps({}))
        self.client.write(f"{base}/rules", json.dumps({
            "inbound_rules": [{"action": "allow", "src_tag": name}],
            "outbound_rules": [{"action": "allow"}]}))

    @etcd_errors
    def remove_profile(self, name: str) -> None:
        if not self._delete(keys.profile(name), recursive=True):
            raise NotFound(f"{name} is not a configured profile.")

    @etcd_errors
    def profile_names(self) -> list[str]:
        return self._child_names(keys.PROFILES)

    @etcd_errors
    def get_profile(self, name: str) -> model.Profile:
        """The profile as Felix sees it; a profile without valid rules has none (empty)."""
        leaves = dict(self._leaves(keys.profile(name)))
        if not leaves and not self._exists(keys.profile(name)):
            raise NotFound(f"{name} is not a configured profile.")
        base = keys.profile(name)
        prof = parse_profile(name, leaves.get(f"{base}/tags"), leaves.get(f"{base}/rules"),
                             leaves.get(f"{base}/labels"))
        if prof is None:                       # no valid rules: Felix sees no rules at all
            prof = parse_profile(name, leaves.get(f"{base}/tags"),
                                 '{"inbound_rules": [], "outbound_rules": []}',
                                 leaves.get(f"{base}/labels"))
        return prof

    @etcd_errors
    def set_profile_tags(self, name: str, tags: Iterable[str]) -> None:
        self.client.write(f"{keys.profile(name)}/tags", json.dumps(list(tags)))

    @etcd_errors
    def set_profile_rules(self, name: str, doc: Mapping) -> None:
        """doc = {"inbound_rules": [...], "outbound_rules": [...]} (rule dicts, spec §2.1)."""
        self.client.write(f"{keys.profile(name)}/rules", json.dumps({
            "inbound_rules": list(doc.get("inbound_rules", [])),
            "outbound_rules": list(doc.get("outbound_rules", []))}))

    # -- endpoints (spec §1.4) ----------------------------------------------------------------
    @etcd_errors
    def set_endpoint(self, ep: model.Endpoint) -> None:
        self.client.write(keys.endpoint(ep.hostname, ep.endpoint_id, ep.orchestrator_id,
                                        ep.workload_id), endpoint_json(ep))

    @etcd_errors
    def remove_endpoint(self, hostname: str, endpoint_id: str,
                        orchestrator: str = keys.ORCHESTRATOR_LIBNETWORK,
                        workload: str = keys.WORKLOAD_LIBNETWORK) -> None:
        if not self._delete(keys.endpoint(hostname, endpoint_id, orchestrator, workload)):
            raise NotFound(f"Endpoint {endpoint_id} not found on host {hostname}")

    @etcd_errors
    def remove_workload(self, hostname: str, orchestrator: str, workload: str) -> None:
        """The workload's whole tree, endpoints included (libcalico remove_workload)."""
        if not self._delete(keys.workload(hostname, orchestrator, workload), recursive=True):
            raise NotFound(f"{workload} is not a configured workload on host {hostname}")

    @etcd_errors
    def endpoints(self, hostname: str | None = None) -> list[model.Endpoint]:
        base = keys.host(hostname) if hostname else keys.HOSTS
        found = (parse_endpoint(k, v) for k, v in self._leaves(base))
        return sorted((e for e in found if e is not None), key=_endpoint_sort_key)

    @etcd_errors
    def find_endpoint(self, endpoint_id: str) -> model.Endpoint | None:
        return next((e for e in self.endpoints() if e.endpoint_id == endpoint_id), None)

    @etcd_errors
    def profile_members(self, profile: str) -> list[model.Endpoint]:
        return [e for e in self.endpoints() if profile in e.profile_ids]

    # -- BGP (spec §1.8) ----------------------------------------------------------------------
    @etcd_errors
    def get_default_as(self) -> str:
        value = self._get(f"{keys.BGP_GLOBAL}/as_num")
        return str(value) if value else model.DEFAULT_AS

    @etcd_errors
    def set_default_as(self, asn: str) -> None:
        self.client.write(f"{keys.BGP_GLOBAL}/as_num", str(asn))

    @etcd_errors
    def get_node_mesh(self) -> bool:
        return parse_node_mesh(self._get(f"{keys.BGP_GLOBAL}/node_mesh"))

    @etcd_errors
    def set_node_mesh(self, enabled: bool) -> None:
        self.client.write(f"{keys.BGP_GLOBAL}/node_mesh", json.dumps({"enabled": bool(enabled)}))

    @etcd_errors
    def get_bgp_loglevel(self, hostname: str | None = None) -> str | None:
        return self._get(keys.bgp_host(hostname, "loglevel") if hostname
                         else f"{keys.BGP_GLOBAL}/loglevel")

    @etcd_errors
    def set_bgp_loglevel(self, level: str | None, hostname: str | None = None) -> None:
        key = keys.bgp_host(hostname, "loglevel") if hostname else f"{keys.BGP_GLOBAL}/loglevel"
        if level is None:
            self._delete(key)
        else:
            self.client.write(key, level)

    def _peers(self, base: str) -> list[model.Peer]:
        found = [parse_peer(v, k.rsplit("/", 1)[-1]) for k, v in self._leaves(base) if v]
        return sorted((p for p in found if p is not None), key=lambda p: _ip_sort_key(p.ip))

    @staticmethod
    def _peer_key(ip: str, hostname: str | None) -> str:
        leaf = f"peer_v{_version_of(ip)}/{ipaddress.ip_address(str(ip))}"
        return keys.bgp_host(hostname, leaf) if hostname else f"{keys.BGP_GLOBAL}/{leaf}"

    @staticmethod
    def _peer_json(ip: str, as_num) -> str:
        return json.dumps({"ip": str(ipaddress.ip_address(str(ip))), "as_num": str(as_num)})

    @etcd_errors
    def global_peers(self, version: int = 4) -> list[model.Peer]:
        return self._peers(f"{keys.BGP_GLOBAL}/peer_v{version}")

    @etcd_errors
    def add_global_peer(self, ip: str, as_num) -> None:
        self.client.write(self._peer_key(ip, None), self._peer_json(ip, as_num))

    @etcd_errors
    def remove_global_peer(self, ip: str) -> None:
        if not self._delete(self._peer_key(ip, None)):
            raise NotFound(f"{ip} is not a configured peer.")

    @etcd_errors
    def node_peers(self, hostname: str, version: int = 4) -> list[model.Peer]:
        return self._peers(keys.bgp_host(hostname, f"peer_v{version}"))

    @etcd_errors
    def add_node_peer(self, hostname: str, ip: str, as_num) -> None:
        self.client.write(self._peer_key(ip, hostname), self._peer_json(ip, as_num))

    @etcd_errors
    def remove_node_peer(self, hostname: str, ip: str) -> None:
        if not self._delete(self._peer_key(ip, hostname)):
            raise NotFound(f"{ip} is not a configured peer.")

    @etcd_errors
    def host_bgp(self, hostname: str) -> tuple[str | None, str | None, str | None]:
        """(ip_addr_v4, ip_addr_v6, as_num or None) as stored: ip_addr_v6 is "" for a host
        started without IPv6; all three are None for a host that never registered."""
        v4 = self._get(keys.bgp_host(hostname, "ip_addr_v4"))
        v6 = self._get(keys.bgp_host(hostname, "ip_addr_v6"))
        as_num = self._get(keys.bgp_host(hostname, "as_num"))
        return v4, v6, as_num or None

    @etcd_errors
    def route_reflectors(self, version: int = 4) -> list[model.RouteReflector]:
        out = []
        for key, value in self._leaves(f"/calico/bgp/v1/rr_v{version}"):
            rr = _parse_rr(value, key.rsplit("/", 1)[-1])
            if rr is not None:
                out.append(rr)
        return sorted(out, key=lambda r: _ip_sort_key(r.ip))

    @etcd_errors
    def add_route_reflector(self, ip: str, cluster_id: str | None = None) -> None:
        """What the operator curls for calico/routereflector (spec §1.8, §6.6)."""
        doc = {"ip": str(ipaddress.ip_address(ip))}
        if cluster_id is not None:
            doc["cluster_id"] = cluster_id
        self.client.write(f"/calico/bgp/v1/rr_v{_version_of(ip)}/{doc['ip']}", json.dumps(doc))

    @etcd_errors
    def remove_route_reflector(self, ip: str) -> None:
        if not self._delete(f"/calico/bgp/v1/rr_v{_version_of(ip)}/{ipaddress.ip_address(ip)}"):
            raise NotFound(f"{ip} is not a configured route reflector.")

    # -- libnetwork (spec §4) -----------------------------------------------------------------
    @etcd_errors
    def set_network(self, network_id: str, request: Mapping) -> None:
        self.client.write(keys.libnetwork_network(network_id), json.dumps(dict(request)))

    @etcd_errors
    def get_network(self, network_id: str) -> dict | None:
        d = _loads(self._get(keys.libnetwork_network(network_id)))
        return d if isinstance(d, dict) else None

    @etcd_errors
    def remove_network(self, network_id: str) -> bool:
        """True if the network was stored."""
        return self._delete(keys.libnetwork_network(network_id))

    # -- whole-tree read and watch -------------------------------------------------------------
    @etcd_errors
    def snapshot(self) -> model.Snapshot:
        """The whole /calico tree from ONE recursive read, as Felix and confd see it.

        Unreadable items (bad JSON, wrong shapes) are skipped one by one; they never make the
        snapshot fail. etcd_index is the X-Etcd-Index of that read (watch from index+1)."""
        try:
            resp = self.client.api_execute(self.client.key_endpoint + "/calico",
                                           "GET", params={"recursive": "true"})
            index = int(resp.headers.get("X-Etcd-Index", 0))
            root = json.loads(resp.data.decode("utf-8")).get("node", {})
        except etcd.EtcdKeyNotFound as e:
            payload = e.payload or {}
            return model.Snapshot(etcd_index=int(payload.get("index", 0) or 0))
        leaves: dict[str, str] = {}
        dirs: set[str] = set()
        _flatten(root, leaves, dirs)
        return build_snapshot(leaves, dirs, index)

    def wait_for_change(self, index: int, timeout: float) -> int:
        """Block until something under /calico changes after `index`, at most `timeout` s.

        Returns the etcd index of the change (> index), `index` itself on timeout, or index+1
        when etcd no longer has the history (event index cleared): re-snapshot in that case."""
        try:
            result = self.client.read("/calico", wait=True, waitIndex=int(index) + 1,
                                      recursive=True, timeout=max(float(timeout), 0.001))
        except etcd.EtcdWatchTimedOut:
            return index
        except (etcd.EtcdEventIndexCleared, etcd.EtcdWatcherCleared):
            return index + 1
        except etcd.EtcdException as e:
            raise DatastoreError(f"wait_for_change: Error accessing etcd ({e}).  "
                                 "Is etcd running?") from e
        return max(int(result.modifiedIndex or 0), index + 1)


def _endpoint_sort_key(e: model.Endpoint):
    return (e.hostname, e.orchestrator_id, e.workload_id, e.endpoint_id)


def _parse_rr(text, ip_from_key: str) -> model.RouteReflector | None:
    d = _loads(text)
    if not isinstance(d, dict):
        return None
    ip = d.get("ip") or ip_from_key
    cluster_id = d.get("cluster_id")
    if not isinstance(ip, str) or not isinstance(cluster_id, (str, type(None))):
        return None
    return model.RouteReflector(ip=ip, cluster_id=cluster_id or None)


def _flatten(node: dict, leaves: dict, dirs: set) -> None:
    stack = [node]
    while stack:
        n = stack.pop()
        key = n.get("key", "/calico")
        if n.get("dir"):
            dirs.add(key)
            stack.extend(n.get("nodes", ()))
        else:
            leaves[key] = n.get("value", "")


def build_snapshot(leaves: Mapping[str, str], dirs: Iterable[str] = (), index: int = 0
                   ) -> model.Snapshot:
    """A Snapshot from the flattened /calico tree (key -> value, plus the directory keys)."""
    gconfig: dict[str, str] = {}
    host_names: set[str] = set()
    host_bird: dict[str, str] = {}
    host_cfg: dict[str, dict[str, str]] = {}
    bgp: dict[str, dict[str, str]] = {}
    host_peers: dict[str, list] = {}
    pools, endpoints, blocks, affinities = [], [], [], []
    profiles_raw: dict[str, dict[str, str]] = {}
    global_peers, rrs, networks = [], [], []
    ready = False
    as_num, node_mesh_text, loglevel = None, None, None

    for key in dirs:
        p = key.split("/")
        if len(p) >= 5 and p[1] == "calico" and (p[2:4] == ["v1", "host"]):
            host_names.add(p[4])
        elif len(p) >= 6 and p[1:5] == ["calico", "bgp", "v1", "host"]:
            host_names.add(p[5])
        elif len(p) >= 6 and p[1:5] == ["calico", "v1", "policy", "profile"]:
            profiles_raw.setdefault(p[5], {})

    for key, value in leaves.items():
        p = key.split("/")
        n = len(p)
        if n < 3 or p[1] != "calico":
            continue
        if p[2] == "v1":
            if n == 4 and p[3] == "Ready":
                ready = value == "true"
            elif n == 5 and p[3] == "config":
                gconfig[p[4]] = value
            elif n >= 6 and p[3] == "host":
                h = p[4]
                host_names.add(h)
                if n == 6 and p[5] == "bird_ip":
                    host_bird[h] = value
                elif n == 7 and p[5] == "config":
                    host_cfg.setdefault(h, {})[p[6]] = value
                elif n == 10 and p[5] == "workload" and p[8] == "endpoint":
                    ep = parse_endpoint(key, value)
                    if ep is not None:
                        endpoints.append(ep)
            elif n == 7 and p[3:5] == ["policy", "profile"]:
                profiles_raw.setdefault(p[5], {})[p[6]] = value
            elif n == 7 and p[3:6] == ["ipam", "v4", "pool"]:
                pool = parse_pool(value)
                if pool is not None:
                    pools.append(pool)
        elif p[2] == "ipam" and n >= 4 and p[3] == "v2":
            if n == 8 and p[4:7] == ["assignment", "ipv4", "block"]:
                block = parse_block(value)
                if block is not None:
                    blocks.append(block)
            elif n == 9 and p[4] == "host" and p[6:8] == ["ipv4", "block"]:
                try:
                    affinities.append((p[5], _norm_cidr(keys.key_cidr(p[8]))))
                except ValueError:
                    pass
        elif p[2] == "bgp" and n >= 5 and p[3] == "v1":
            if p[4] == "global":
                if n == 6 and p[5] == "as_num":
                    as_num = value
                elif n == 6 and p[5] == "node_mesh":
                    node_mesh_text = value
                elif n == 6 and p[5] == "loglevel":
                    loglevel = value or None
                elif n == 7 and p[5] == "peer_v4":
                    peer = parse_peer(value, p[6])
                    if peer is not None:
                        global_peers.append(peer)
            elif p[4] == "host" and n >= 7:
                h = p[5]
                host_names.add(h)
                if n == 7 and p[6] in ("ip_addr_v4", "ip_addr_v6", "as_num", "loglevel"):
                    bgp.setdefault(h, {})[p[6]] = value
                elif n == 8 and p[6] == "peer_v4":
                    peer = parse_peer(value, p[7])
                    if peer is not None:
                        host_peers.setdefault(h, []).append(peer)
            elif p[4] == "rr_v4" and n == 6:
                rr = _parse_rr(value, p[5])
                if rr is not None:
                    rrs.append(rr)
        elif p[2] == "libnetwork" and n == 5 and p[3] == "v1":
            networks.append((p[4], value))

    hosts = []
    for h in sorted(host_names):
        b = bgp.get(h, {})
        hosts.append(model.Host(
            hostname=h, bird_ip=host_bird.get(h) or None, ip_addr_v4=b.get("ip_addr_v4") or None,
            ip_addr_v6=b.get("ip_addr_v6") or None, as_num=b.get("as_num") or None,
            loglevel=b.get("loglevel") or None,
            peers_v4=tuple(sorted(host_peers.get(h, ()), key=lambda x: _ip_sort_key(x.ip))),
            config=tuple(sorted(host_cfg.get(h, {}).items()))))
    profiles = []
    for name in sorted(profiles_raw):
        raw = profiles_raw[name]
        prof = parse_profile(name, raw.get("tags"), raw.get("rules"), raw.get("labels"))
        if prof is not None:
            profiles.append(prof)
    return model.Snapshot(
        etcd_index=index, ready=ready, config=tuple(sorted(gconfig.items())),
        hosts=tuple(hosts),
        pools=tuple(sorted(pools, key=lambda x: _net_sort_key(x.cidr))),
        profiles=tuple(profiles),
        endpoints=tuple(sorted(endpoints, key=_endpoint_sort_key)),
        blocks=tuple(sorted(blocks, key=lambda x: _net_sort_key(x.cidr))),
        affinities=tuple(sorted(set(affinities))),
        as_num=as_num or model.DEFAULT_AS,
        node_mesh=parse_node_mesh(node_mesh_text),
        global_peers_v4=tuple(sorted(global_peers, key=lambda x: _ip_sort_key(x.ip))),
        route_reflectors=tuple(sorted(rrs, key=lambda x: _ip_sort_key(x.ip))),
        libnetwork_networks=tuple(sorted(networks)),
        loglevel=loglevel)
