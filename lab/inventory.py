"""Load and validate the inventory of a real lab: hosts reached over SSH, and its etcd.

Three spellings of the same thing load into one frozen `Inventory`: the native YAML format
(see lab/inventories/example.yaml), an Ansible YAML inventory (top-level `all:`) and an
Ansible INI inventory, whose host variables are `ansible_*` plus `calab_*`. Every mistake
fails here, once, as a one-line InventoryError naming the file, the host (or group, or INI
line) and the key, so that a typo never surfaces later as an SSH or Docker failure.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import shlex
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, NoReturn
from urllib.parse import urlsplit

import yaml

from lab.errors import InventoryError, TopologyError
from lab.schema import (
    DEFAULT_AS, MAX_AS, ROLE_CALICO_NODE, ROLE_ROUTE_REFLECTOR, ROLES, TOPOLOGY_NAME, Bgp,
    Etcd, Fabric, Management, Node, boolean, describe, int_in, ipv4, list_of, load_yaml,
    matching, non_empty_str, one_of, parse_or_none, plain, read_limited, show,
)
from lab.topology import Topology

HOST_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DNS_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?")
HOST_KEY_POLICIES = ("verify", "trust-on-first-use")
DOCKER_SCHEMES = ("ssh", "tcp", "unix", "http", "https")
SECRET_KEYS = ("password", "sudo_password")
REDACTED = "***"
MAX_BYTES = 1 << 20  # a thousand hosts fit in a quarter of this

SSH_KEYS = ("user", "port", "key_file", "known_hosts", "host_key_policy", "sudo",
            "connect_timeout", "command_timeout", "password", "sudo_password")
HOST_KEYS = ("address", "ip", "roles", "as_num", "docker_url") + SSH_KEYS
ETCD_KEYS = ("endpoints", "ca_file", "cert_file", "key_file", "host")
TOP_KEYS = ("version", "name", "ssh", "etcd", "hosts")
SSH_DEFAULTS = {"user": "root", "port": 22, "key_file": None, "known_hosts": "~/.ssh/known_hosts",
                "host_key_policy": "verify", "sudo": False, "connect_timeout": 10.0,
                "command_timeout": 60.0, "password": None, "sudo_password": None}

# Ansible host variables -> native host keys (ansible_ssh_* are Ansible 1.x/2.0 spellings).
ANSIBLE_VARS = {
    "ansible_host": "address", "ansible_ssh_host": "address", "ansible_user": "user",
    "ansible_ssh_user": "user", "ansible_port": "port", "ansible_ssh_port": "port",
    "ansible_ssh_private_key_file": "key_file", "ansible_become": "sudo",
    "ansible_password": "password", "ansible_ssh_pass": "password",
    "ansible_become_password": "sudo_password", "ansible_become_pass": "sudo_password",
}
CALAB_HOST_VARS = {f"calab_{k}": k for k in ("ip", "as_num", "known_hosts", "host_key_policy",
                                             "connect_timeout", "command_timeout", "docker_url")}
CALAB_LAB_VARS = {"calab_name": "name", "calab_etcd_endpoints": "endpoints",
                  "calab_etcd_ca_file": "ca_file", "calab_etcd_cert_file": "cert_file",
                  "calab_etcd_key_file": "key_file"}
ROLE_GROUPS = {"calico_nodes": ROLE_CALICO_NODE, "route_reflectors": ROLE_ROUTE_REFLECTOR}
ETCD_GROUP = "etcd"
INI_SUFFIXES = (".ini", ".cfg")
INI_HEADER = re.compile(r"^\[[^\]\n]+\]\s*(?:[#;].*)?$", re.M)  # column 0: never a YAML flow list
INI_TRUE, INI_FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class SshAccess:
    user: str
    port: int
    key_file: str | None  # None: paramiko's default keys and the SSH agent
    known_hosts: str
    host_key_policy: str  # "verify" | "trust-on-first-use"
    sudo: bool  # run commands through `sudo -n`
    connect_timeout: float
    command_timeout: float
    password: str | None = field(default=None, repr=False)
    sudo_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class InventoryHost:
    name: str
    address: str  # how SSH reaches it: an IP or a DNS name
    ip: str  # the host's Calico/BGP IPv4 address
    roles: tuple[str, ...]
    as_num: int | None
    ssh: SshAccess
    docker_url: str


@dataclass(frozen=True)
class EtcdAccess:
    endpoints: tuple[str, ...]  # scheme://host:port, in the file's order
    scheme: str
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    host: str | None  # the inventory host that runs etcd, if it is one

    @property
    def url(self) -> str:
        return self.endpoints[0]

    @property
    def authority(self) -> str:
        """host:port of the first endpoint, as Docker's --cluster-store=etcd://… names it."""
        return urlsplit(self.url).netloc


@dataclass(frozen=True)
class Inventory:
    name: str
    source: str = field(compare=False)  # the file it came from: equal labs, different files
    hosts: tuple[InventoryHost, ...]  # sorted by name
    etcd: EtcdAccess

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(sorted(host.name for host in self.hosts))

    def host(self, name: str) -> InventoryHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise InventoryError(f"inventory {self.source}: unknown host {name!r} "
                             f"(hosts: {', '.join(self.node_names)})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, secrets included: for handing to xdist workers, never for logs."""
        return plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Inventory:
        """Rebuild from to_dict() output. Not re-validated: it was valid when it was made."""
        hosts = tuple(
            InventoryHost(**{**h, "roles": tuple(h["roles"]), "ssh": SshAccess(**h["ssh"])})
            for h in data["hosts"]
        )
        etcd = EtcdAccess(**{**data["etcd"], "endpoints": tuple(data["etcd"]["endpoints"])})
        return cls(name=data["name"], source=data["source"], hosts=hosts, etcd=etcd)

    def redacted(self) -> dict[str, Any]:
        """to_dict() with every secret that is set replaced by "***": for reports and logs."""
        data = self.to_dict()
        for host in data["hosts"]:
            for key in SECRET_KEYS:
                if host["ssh"][key] is not None:
                    host["ssh"][key] = REDACTED
        return data


def secrets(inv: Inventory) -> list[str]:
    """Every secret value in the inventory, so that reports can be checked for leaks."""
    found = {getattr(h.ssh, key) for h in inv.hosts for key in SECRET_KEYS}
    return sorted(value for value in found if value is not None)


# --------------------------------------------------------------------------- locations


@dataclass(frozen=True)
class _Loc:
    """Where a value was written: file, then host/group/INI line, then key path. A
    lab.schema.Location, so the shared value checkers work here unchanged."""

    source: str
    where: str = ""  # "host node2", "group calico_nodes", "line 7: host node2"
    path: str = ""  # the key as written in the file: "port", "ssh.port", "ansible_port"

    def key(self, key: str) -> _Loc:
        return replace(self, path=f"{self.path}.{key}" if self.path else key)

    def index(self, index: int) -> _Loc:
        return replace(self, path=f"{self.path}[{index}]")

    def fail(self, reason: str) -> NoReturn:
        parts = (f"inventory {self.source}", self.where, self.path and f"key {self.path!r}", reason)
        raise InventoryError(": ".join(part for part in parts if part))


Raw = dict[str, tuple[Any, _Loc]]  # native key -> (value, where it was written)


def _unknown(loc: _Loc, known: Any) -> NoReturn:
    close = difflib.get_close_matches(str(loc.path.rsplit(".", 1)[-1]), list(known), n=1)
    hint = f", did you mean {close[0]!r}?" if close else ""
    loc.fail(f"unknown key{hint} (allowed: {', '.join(known)})")


def _mapping(loc: _Loc, value: object, allowed: tuple[str, ...] | None = None) -> dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        loc.fail(f"expected a mapping, got {describe(value)}")
    for key in value:
        if allowed is not None and key not in allowed:
            _unknown(loc.key(str(key)), allowed)
    return value


def _raw(loc: _Loc, value: object, allowed: tuple[str, ...]) -> Raw:
    # A bare `key:` (null) means "use the default", as in topology files.
    return {k: (v, loc.key(k)) for k, v in _mapping(loc, value, allowed).items() if v is not None}


# --------------------------------------------------------------------------- value checks


def _address(loc: _Loc, value: object) -> str:
    ip = parse_or_none(ipaddress.ip_address, non_empty_str(loc, value))
    if ip is not None:
        return str(ip)
    if not DNS_NAME.fullmatch(value):
        loc.fail(f"{show(value)} is not an IP address or DNS name")
    return value


def _seconds(loc: _Loc, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        loc.fail(f"expected a number of seconds > 0, got {describe(value)}")
    return float(value)


def _secret(loc: _Loc, value: object) -> str:
    if not isinstance(value, str) or not value:  # never echo the value: it is a secret
        loc.fail("expected a non-empty string (quote it in YAML)")
    return value


def _roles(loc: _Loc, value: object) -> tuple[str, ...]:
    roles = list_of(one_of(*ROLES))(loc, value)
    if not roles:
        loc.fail(f"must not be empty (roles: {', '.join(ROLES)})")
    if len(set(roles)) != len(roles):
        loc.fail(f"lists a role twice: {list(roles)}")
    return tuple(role for role in ROLES if role in roles)  # one order, whatever the file's


def _docker_url(loc: _Loc, value: object) -> str:
    if urlsplit(non_empty_str(loc, value)).scheme not in DOCKER_SCHEMES:
        loc.fail(f"{show(value)} is not a Docker URL ({', '.join(s + '://' for s in DOCKER_SCHEMES)})")
    return value


# scheme://host:port[/]: the host an IPv4 address, a DNS name or a bracketed IPv6 address, the
# port digits. Nothing else: the authority is written into shell and systemd files when hosts
# are provisioned (`export ETCD_AUTHORITY=…`, dockerd's --cluster-store=etcd://…).
ENDPOINT = re.compile(r"(?P<scheme>https?)://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)"
                      r":(?P<port>[0-9]{1,5})/?")


def _endpoint(loc: _Loc, value: object) -> str:
    text = non_empty_str(loc, value)
    match = ENDPOINT.fullmatch(text)
    host = match and match["host"]
    valid_host = bool(match) and (
        parse_or_none(ipaddress.IPv6Address, host[1:-1]) is not None if host.startswith("[")
        else parse_or_none(ipaddress.IPv4Address, host) is not None
        or (DNS_NAME.fullmatch(host) is not None and not host.replace(".", "").isdigit()))
    if not valid_host or not 1 <= int(match["port"]) <= 65535:
        loc.fail(f"{show(value)} is not an etcd endpoint like http://192.168.20.1:2379 "
                 "(http or https, an IP address or DNS name, a port 1-65535, nothing after the port)")
    if host.startswith("["):
        host = f"[{ipaddress.IPv6Address(host[1:-1])}]"
    return f"{match['scheme']}://{host.lower()}:{int(match['port'])}"


def _path(base: Path) -> Callable[[_Loc, object], str]:
    """~ expanded, relative paths taken from the inventory file's folder."""
    return lambda loc, value: os.path.normpath(base / os.path.expanduser(non_empty_str(loc, value)))


def _checks(base: Path) -> dict[str, Callable[[_Loc, Any], Any]]:
    return {
        "address": _address, "ip": ipv4, "roles": _roles, "as_num": int_in(1, MAX_AS),
        "docker_url": _docker_url, "user": non_empty_str, "port": int_in(1, 65535),
        "key_file": _path(base), "known_hosts": _path(base),
        "host_key_policy": one_of(*HOST_KEY_POLICIES), "sudo": boolean,
        "connect_timeout": _seconds, "command_timeout": _seconds,
        "password": _secret, "sudo_password": _secret,
    }


def _typed(raw: Raw, checks: dict[str, Callable[[_Loc, Any], Any]]) -> Raw:
    return {key: (checks[key](loc, value), loc) for key, (value, loc) in raw.items()}


# --------------------------------------------------------------------------- building


@dataclass(frozen=True)
class _Spelling:
    """How one format writes each setting, to name it when it is missing or clashes."""

    host: Callable[[str], str]  # native host key -> key as written
    lab: dict[str, str]  # name, endpoints, ca_file, cert_file, key_file, host -> as written


NATIVE = _Spelling(host=lambda key: key,
                   lab={"name": "name", **{key: f"etcd.{key}" for key in ETCD_KEYS}})
ANSIBLE = _Spelling(
    host=lambda key: next(var for var, k in {**CALAB_HOST_VARS, **ANSIBLE_VARS}.items() if k == key),
    lab={**{k: var for var, k in CALAB_LAB_VARS.items()}, "host": f"group {ETCD_GROUP}"},
)


def _build_host(name: str, layers: list[Raw], at: _Loc, spell: _Spelling, base: Path) -> InventoryHost:
    merged: Raw = {}
    for layer in layers:  # later layers (the host's own values) override earlier ones
        merged.update(layer)

    def value(key: str, default: Any = None) -> Any:
        return merged[key][0] if key in merged else default

    if "address" not in merged:
        at.key(spell.host("address")).fail("is required (how SSH reaches the host: an IP or DNS name)")
    address = value("address")
    if "ip" not in merged and parse_or_none(ipaddress.IPv4Address, address) is None:
        at.key(spell.host("ip")).fail(
            f"is required: address {address} is not an IPv4 address (ip is the host's Calico/BGP IPv4)")
    defaults = {**SSH_DEFAULTS, "known_hosts": _path(base)(at, SSH_DEFAULTS["known_hosts"])}
    ssh = SshAccess(**{key: value(key, default) for key, default in defaults.items()})
    return InventoryHost(
        name=name,
        address=address,
        ip=value("ip", address),
        roles=value("roles", (ROLE_CALICO_NODE,)),
        as_num=value("as_num"),
        ssh=ssh,
        docker_url=value("docker_url", _docker_default(address, ssh)),
    )


def _docker_default(address: str, ssh: SshAccess) -> str:
    host = f"[{address}]" if ":" in address else address  # an IPv6 address
    return f"ssh://{ssh.user}@{host}:{ssh.port}"


def _build_etcd(raw: Raw, top: _Loc, spell: _Spelling, hosts: dict[str, InventoryHost],
                base: Path) -> EtcdAccess:
    def loc(key: str) -> _Loc:
        return raw[key][1] if key in raw else top.key(spell.lab[key])

    if "endpoints" not in raw:
        loc("endpoints").fail("is required: one or more etcd URLs like http://192.168.20.1:2379")
    value, where = raw["endpoints"]
    endpoints = list_of(_endpoint)(where, value)
    if not endpoints:
        where.fail("must list at least one etcd URL like http://192.168.20.1:2379")
    scheme = urlsplit(endpoints[0]).scheme
    for i, endpoint in enumerate(endpoints):
        if urlsplit(endpoint).scheme != scheme:
            where.index(i).fail(f"uses {urlsplit(endpoint).scheme} but the first endpoint uses "
                                f"{scheme}: all endpoints must use one scheme")
        if endpoint in endpoints[:i]:
            where.index(i).fail(f"{endpoint} is listed twice")
    tls = {key: _path(base)(loc(key), raw[key][0])
           for key in ("ca_file", "cert_file", "key_file") if key in raw}
    for key in tls:
        if scheme != "https":
            loc(key).fail(f"is only for https endpoints ({spell.lab['endpoints']} use {scheme})")
    for key, partner in (("cert_file", "key_file"), ("key_file", "cert_file")):
        if key in tls and partner not in tls:
            loc(key).fail(f"needs {spell.lab[partner]} too (a client certificate goes with its key)")
    for key, path in tls.items():
        if not os.path.isfile(path):
            loc(key).fail(f"no such file: {path}")
    etcd_host = non_empty_str(loc("host"), raw["host"][0]) if "host" in raw else None
    if etcd_host is not None and etcd_host not in hosts:
        loc("host").fail(f"unknown host {etcd_host!r} (hosts: {', '.join(sorted(hosts))})")
    return EtcdAccess(endpoints=endpoints, scheme=scheme, host=etcd_host, ca_file=tls.get("ca_file"),
                      cert_file=tls.get("cert_file"), key_file=tls.get("key_file"))


def _build(source: str, base: Path, lab: Raw, hosts: dict[str, tuple[_Loc, list[Raw]]],
           spell: _Spelling) -> Inventory:
    """The part both formats share: defaults, cross-host rules, etcd."""
    top = _Loc(source)
    if not hosts:
        top.fail("defines no hosts (at least one is needed)")
    if "name" in lab:
        name = matching(TOPOLOGY_NAME, "lab name")(lab["name"][1], lab["name"][0])
    else:
        name = Path(source).stem
        if not TOPOLOGY_NAME.fullmatch(name):
            top.key(spell.lab["name"]).fail(
                f"is required: the file name {name!r} is not a valid lab name "
                f"(must match {TOPOLOGY_NAME.pattern})")
    built: dict[str, InventoryHost] = {}
    ips: dict[str, str] = {}
    for host_name in sorted(hosts):
        at, layers = hosts[host_name]
        host = built[host_name] = _build_host(host_name, layers, at, spell, base)
        if host.ip in ips:
            at.key(spell.host("ip")).fail(f"{host.ip} is already the ip of host {ips[host.ip]}")
        ips[host.ip] = host_name
    return Inventory(name=name, source=source, hosts=tuple(built.values()),
                     etcd=_build_etcd(lab, top, spell, built, base))


# --------------------------------------------------------------------------- native format


def _from_native(data: object, source: str, base: Path) -> Inventory:
    top = _Loc(source)
    mapping = _mapping(top, data, TOP_KEYS)
    if mapping.get("version") not in (None, 1):
        top.key("version").fail(f"{show(mapping['version'])} is not supported (this suite reads 1)")
    checks = _checks(base)
    defaults = _typed(_raw(top.key("ssh"), mapping.get("ssh"), SSH_KEYS), checks)
    lab = _raw(top.key("etcd"), mapping.get("etcd"), ETCD_KEYS)
    if mapping.get("name") is not None:
        lab["name"] = (mapping["name"], top.key("name"))
    hosts = {}
    for name, entry in _mapping(top.key("hosts"), mapping.get("hosts")).items():
        matching(HOST_NAME, "host name")(top.key("hosts"), name)
        at = _Loc(source, f"host {name}")
        if not isinstance(entry, dict):
            at.fail(f"expected a mapping with at least an address, got {describe(entry)}")
        hosts[name] = (at, [defaults, _typed(_raw(at, entry, HOST_KEYS), checks)])
    return _build(source, base, lab, hosts, NATIVE)


# --------------------------------------------------------------------------- Ansible formats


@dataclass
class _Group:
    vars: dict[str, tuple[Any, _Loc]] = field(default_factory=dict)  # Ansible var -> (value, where)
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)


def _ansible_yaml(data: dict[Any, Any], source: str) -> tuple[dict[str, _Group], dict[str, dict]]:
    """Groups (every top-level key is one, `all` included) and each host's own variables."""
    groups: dict[str, _Group] = {}
    host_vars: dict[str, dict[str, tuple[Any, _Loc]]] = {}

    def visit(name: object, value: object, parent: str | None) -> None:
        at = _Loc(source, f"group {name}")
        group = groups.setdefault(str(name), _Group())
        if parent is not None:
            groups[parent].children.append(str(name))
        entry = _mapping(at, value, ("hosts", "vars", "children"))
        variables = _mapping(at.key("vars"), entry.get("vars"))
        group.vars.update((str(k), (v, at.key(str(k)))) for k, v in variables.items())
        for host, hvars in _mapping(at.key("hosts"), entry.get("hosts")).items():
            matching(HOST_NAME, "host name")(at.key("hosts"), host)
            host_at = _Loc(source, f"host {host}")
            group.hosts.append(str(host))
            host_vars.setdefault(str(host), {}).update(
                (str(k), (v, host_at.key(str(k)))) for k, v in _mapping(host_at, hvars).items())
        for child, child_value in _mapping(at.key("children"), entry.get("children")).items():
            visit(child, child_value, str(name))

    for name, value in data.items():
        visit(name, value, None)
    return groups, host_vars


def _ansible_ini(text: str, source: str) -> tuple[dict[str, _Group], dict[str, dict]]:
    """The same as _ansible_yaml, from [group], [group:vars] and [group:children] sections."""
    groups: dict[str, _Group] = {"ungrouped": _Group()}
    host_vars: dict[str, dict[str, tuple[Any, _Loc]]] = {}
    group, kind = "ungrouped", "hosts"  # lines before any [section] are ungrouped hosts
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        at = _Loc(source, f"line {number}")
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            header = re.fullmatch(r"\[([^\]:\s]+)(?::([^\]\s]*))?\]\s*(?:[#;].*)?", line)
            if not header:
                at.fail(f"{show(line)} is not a section header like "
                        "[group], [group:vars] or [group:children]")
            group, kind = header.group(1), header.group(2) or "hosts"
            if kind not in ("hosts", "vars", "children"):
                at.fail(f"unknown section type :{kind} "
                        f"(expected [{group}], [{group}:vars] or [{group}:children])")
            groups.setdefault(group, _Group())
        elif kind == "children":
            groups[group].children.append(line.split()[0])
            groups.setdefault(line.split()[0], _Group())
        elif kind == "vars":
            group_at = replace(at, where=f"{at.where}: group {group}")
            key, sep, value = (part.strip() for part in line.partition("="))
            if not sep or not key:
                group_at.fail(f"expected key=value, got {_shown(line)}")
            if key in groups[group].vars:
                _duplicate(group_at.key(key), groups[group].vars[key][1])
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            groups[group].vars[key] = (value, group_at.key(key))
        else:
            words = parse_or_none(lambda s: shlex.split(s, comments=True), line)
            if words is None:
                at.fail("cannot split the line into words (an unclosed quote?)")  # may hold a secret
            host, assignments = matching(HOST_NAME, "host name")(at, words[0]), words[1:]
            host_at = replace(at, where=f"{at.where}: host {host}")
            groups[group].hosts.append(host)
            line_vars: dict[str, tuple[Any, _Loc]] = {}
            for word in assignments:
                key, sep, value = word.partition("=")
                secret_before = [k for k in line_vars if k in SECRET_VARS]
                if (not sep or not key) and secret_before:   # likely the rest of that secret
                    host_at.fail(f"expected key=value after {secret_before[-1]}, got a word that "
                                 "is not (not shown: it may be part of the secret); a value with "
                                 "a space must be quoted: key='…'")
                if not sep or not key:
                    host_at.fail(f"expected key=value, got {_shown(word)}")
                if key in line_vars:
                    _duplicate(host_at.key(key), line_vars[key][1])
                line_vars[key] = (value, host_at.key(key))
            host_vars.setdefault(host, {}).update(line_vars)
    return groups, host_vars


SECRET_VARS = tuple(var for var, key in ANSIBLE_VARS.items() if key in SECRET_KEYS)


def _shown(text: str) -> str:
    """text for an error message, unless it may hold a secret."""
    if any(var in text for var in SECRET_VARS):
        return "a line that sets a secret (not shown)"
    return show(text)


def _duplicate(loc: _Loc, first: _Loc) -> NoReturn:
    loc.fail(f"duplicate key (already set at {first.where})")


def _from_ini_text(key: str, value: Any, loc: _Loc) -> Any:
    """INI values are strings: give them the type the native key has."""
    if not isinstance(value, str):
        return value
    if key in ("port", "as_num") and value.isdigit():
        return int(value)
    if key in ("connect_timeout", "command_timeout"):
        number = parse_or_none(float, value)
        return value if number is None else number
    if key == "sudo":
        if value.lower() not in INI_TRUE + INI_FALSE:
            loc.fail(f"expected one of {', '.join(INI_TRUE + INI_FALSE)}, got {show(value)}")
        return value.lower() in INI_TRUE
    if key == "endpoints":
        return [part.strip() for part in value.split(",")]
    return value


def _translate(variables: dict[str, tuple[Any, _Loc]], ini: bool, lab_wide: bool) -> tuple[Raw, Raw]:
    """Ansible variables -> (host settings, lab-wide settings), both keyed by native key."""
    host: Raw = {}
    lab: Raw = {}
    known_calab = list(CALAB_HOST_VARS) + list(CALAB_LAB_VARS)
    for var, (value, loc) in variables.items():
        if var in ANSIBLE_VARS or var in CALAB_HOST_VARS:
            key, into = ANSIBLE_VARS.get(var) or CALAB_HOST_VARS[var], host
        elif var in CALAB_LAB_VARS:
            if not lab_wide:
                loc.fail("is a lab-wide setting: set it in the vars of all or of a group")
            key, into = CALAB_LAB_VARS[var], lab
        elif var.startswith("calab_"):
            close = difflib.get_close_matches(var, known_calab, n=1)
            hint = f", did you mean {close[0]!r}?" if close else ""
            loc.fail(f"unknown calab_ variable{hint} (known: {', '.join(known_calab)})")
        else:
            continue  # other ansible_* and the user's own variables are not ours
        if key in into:
            other = into[key][1]
            loc.fail(f"sets the same thing as {other.path!r} ({other.where}); keep one")
        if value is not None:
            into[key] = (_from_ini_text(key, value, loc) if ini else value, loc)
    return host, lab


def _from_ansible(groups: dict[str, _Group], host_vars: dict[str, dict], source: str, base: Path,
                  ini: bool) -> Inventory:
    groups.setdefault("all", _Group())
    parents = {name: [p for p, g in groups.items() if name in g.children] for name in groups}

    def members(name: str, path: tuple[str, ...] = ()) -> set[str]:
        if name in path:
            _Loc(source, f"group {name}").fail(f"is its own descendant: {' -> '.join(path + (name,))}")
        group = groups[name]
        found = set(group.hosts).union(*(members(child, path + (name,)) for child in group.children))
        return found | (set(host_vars) if name == "all" else set())

    def depth(name: str) -> int:  # Ansible: deeper (more specific) groups override their parents
        return 0 if name == "all" else 1 + max((depth(p) for p in parents[name]), default=0)

    host_of = {name: members(name) for name in groups}
    checks = _checks(base)
    group_order = sorted((name for name in groups if name != "all"), key=lambda n: (depth(n), n))
    lab: Raw = {}
    group_layers: dict[str, Raw] = {}
    for name in ["all"] + group_order:
        host_part, lab_part = _translate(groups[name].vars, ini, lab_wide=True)
        group_layers[name] = _typed(host_part, checks)
        lab.update(lab_part)
    etcd_hosts = sorted(host_of.get(ETCD_GROUP, ()))
    if len(etcd_hosts) > 1:
        _Loc(source, f"group {ETCD_GROUP}").fail(
            f"has {len(etcd_hosts)} hosts ({', '.join(etcd_hosts)}); "
            "it names the one host that runs etcd")
    if etcd_hosts:
        lab["host"] = (etcd_hosts[0], _Loc(source, f"group {ETCD_GROUP}"))

    hosts = {}
    for name in sorted(host_of["all"]):
        at = _Loc(source, f"host {name}")
        own, _ = _translate(host_vars.get(name, {}), ini, lab_wide=False)
        roles = tuple(role for group, role in ROLE_GROUPS.items() if name in host_of.get(group, ()))
        implied = {"address": (name, at), "roles": (_roles(at, roles or [ROLE_CALICO_NODE]), at)}
        layers = [implied] + [group_layers[g] for g in ["all"] + group_order if name in host_of[g]]
        hosts[name] = (at, layers + [_typed(own, checks)])
    return _build(source, base, lab, hosts, ANSIBLE)


# --------------------------------------------------------------------------- entry points


def load_inventory(path: str | os.PathLike[str]) -> Inventory:
    """Load a native YAML, Ansible YAML or Ansible INI inventory (detected, see module doc)."""
    source = os.fspath(path)
    try:
        text = read_limited(source, MAX_BYTES, source, "inventory")
    except TopologyError as err:
        raise InventoryError(f"inventory {err}") from None
    except FileNotFoundError:
        raise InventoryError(f"inventory {source}: no such file") from None
    except OSError as err:
        raise InventoryError(f"inventory {source}: cannot read: {err.strerror or err}") from None
    base = Path(source).resolve().parent
    suffix = Path(source).suffix.lower()
    looks_ini = bool(INI_HEADER.search(text))
    if suffix in INI_SUFFIXES:
        return _from_ansible(*_ansible_ini(text, source), source, base, ini=True)
    try:
        data = load_yaml(text, source)
    except TopologyError as err:
        if looks_ini:
            return _from_ansible(*_ansible_ini(text, source), source, base, ini=True)
        raise InventoryError(f"inventory {err}") from None
    if isinstance(data, dict) and "all" in data:
        return _from_ansible(*_ansible_yaml(data, source), source, base, ini=False)
    if not isinstance(data, dict) and (looks_ini or suffix not in (".yaml", ".yml")):
        return _from_ansible(*_ansible_ini(text, source), source, base, ini=True)
    return _from_native(data, source, base)


DUMP_HEADER = """\
# Inventory of a real lab for the Calico-on-Docker conformance suite (lab/inventory.py).
#   name   the lab's name, [a-z0-9][a-z0-9-]* (default: the file's name)
#   ssh    defaults for every host, each may be overridden per host: user, port,
#          key_file (none: paramiko's default keys and agent), known_hosts,
#          host_key_policy (verify | trust-on-first-use), sudo (run commands via `sudo -n`),
#          connect_timeout, command_timeout (seconds), password, sudo_password (secrets)
#   etcd   endpoints (http:// or https://host:port, one scheme for all), ca_file, cert_file,
#          key_file (https only; cert and key together), host (the host that runs etcd)
#   hosts  name (as Calico knows the host) -> address (how SSH reaches it), ip (its
#          Calico/BGP IPv4; default: address), roles (calico-node, route-reflector), as_num,
#          docker_url (default ssh://user@address:port), and any ssh key as an override
# Paths expand ~ and are relative to this file's folder.
"""


def dump_inventory(inv: Inventory, *, include_secrets: bool = False) -> str:
    """Native YAML text that loads back to inv. Secrets are left out unless asked for, since
    the text is meant to be shown."""
    ssh = [plain(host.ssh) for host in inv.hosts]
    shown = [key for key in SSH_KEYS if include_secrets or key not in SECRET_KEYS]
    # The most common value of each setting becomes the default; a null can't override one.
    shared = {key: Counter(s[key] for s in ssh).most_common(1)[0][0] for key in shown
              if all(s[key] is not None for s in ssh)}
    hosts = {}
    for host, access in zip(inv.hosts, ssh):
        entry: dict[str, Any] = {"address": host.address}
        if host.ip != host.address:
            entry["ip"] = host.ip
        entry["roles"] = list(host.roles)
        if host.as_num is not None:
            entry["as_num"] = host.as_num
        entry.update((key, access[key]) for key in shown
                     if access[key] is not None and access[key] != shared.get(key))
        if host.docker_url != _docker_default(host.address, host.ssh):
            entry["docker_url"] = host.docker_url
        hosts[host.name] = entry
    etcd = {key: value for key, value in plain(inv.etcd).items()
            if key != "scheme" and value is not None}
    data = {"version": 1, "name": inv.name, "ssh": shared, "etcd": etcd, "hosts": hosts}
    left_out = not include_secrets and secrets(inv)
    note = "# Secrets (password, sudo_password) are left out.\n" if left_out else ""
    return DUMP_HEADER + note + "\n" + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def to_topology(inv: Inventory) -> Topology:
    """The inventory as a Topology, for code that reads node names, IPs, roles and etcd.

    Built directly, not through Topology.from_dict: a real lab has no fabric subnet or
    management namespace of ours (0.0.0.0/0 and 0.0.0.0 say so), and its host names may be
    longer than an embedded node's. BGP settings live in etcd, so bgp is a plain mesh here.
    """
    endpoint = urlsplit(inv.etcd.url)
    etcd_node = inv.etcd.host or next(
        (h.name for h in inv.hosts if endpoint.hostname in (h.ip, h.address)), inv.hosts[0].name)
    return Topology(
        name=inv.name,
        description=f"real lab from inventory {inv.source}",
        fabric=Fabric(subnet="0.0.0.0/0"),
        management=Management(name="operator", ip="0.0.0.0"),
        etcd=Etcd(node=etcd_node, port=endpoint.port),
        nodes=tuple(Node(name=h.name, ip=h.ip, as_num=h.as_num, roles=h.roles) for h in inv.hosts),
        bgp=Bgp(mode="mesh", as_num=DEFAULT_AS, route_reflectors=(), peers=()),
        pools=(), networks=(), profiles=(), workloads=(),
    )
