"""The schema shared by topology files (lab/topology.py) and inventories (lab/inventory.py).

* constants both kinds of lab description use: roles, the AS range and default, lab names;
* the parts of the lab model as frozen dataclasses (Topology, which holds them and is
  loaded from a topology file, stays in lab/topology.py);
* strict YAML loading (duplicate keys refused) and the value checkers. A checker takes a
  Location (a file and key path that can `fail` with a one-line reason) and a value, and
  returns the value checked, so each loader gets its own error type and wording.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Callable, NoReturn, Protocol

import yaml

from lab.errors import TopologyError

ROLE_CALICO_NODE = "calico-node"
ROLE_ROUTE_REFLECTOR = "route-reflector"
ROLES = (ROLE_CALICO_NODE, ROLE_ROUTE_REFLECTOR)
MAX_AS = 4294967295  # 4-byte AS numbers
DEFAULT_AS = 64511
TOPOLOGY_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")  # a topology's name, or an inventory's lab


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Fabric:
    subnet: str


@dataclass(frozen=True)
class Management:
    name: str
    ip: str


@dataclass(frozen=True)
class Etcd:
    node: str
    port: int


@dataclass(frozen=True)
class Node:
    name: str
    ip: str
    as_num: int | None  # None: the node uses bgp.as_num
    roles: tuple[str, ...]


@dataclass(frozen=True)
class RouteReflector:
    node: str
    cluster_id: str


@dataclass(frozen=True)
class BgpPeer:
    ip: str
    as_num: int
    node: str | None  # None: a global peer of every node


@dataclass(frozen=True)
class Bgp:
    mode: str
    as_num: int
    route_reflectors: tuple[RouteReflector, ...]
    peers: tuple[BgpPeer, ...]


@dataclass(frozen=True)
class Pool:
    cidr: str
    ipip: bool
    nat_outgoing: bool


@dataclass(frozen=True)
class Network:
    name: str
    subnet: str | None
    driver: str
    ipam_driver: str


@dataclass(frozen=True)
class Rules:
    # Verbatim calicoctl rule strings, the complete wanted list per direction (the
    # profile's rules are made equal to it); None leaves that direction as it is.
    inbound: tuple[str, ...] | None
    outbound: tuple[str, ...] | None


@dataclass(frozen=True)
class Profile:
    name: str
    tags: tuple[str, ...]
    rules: Rules


@dataclass(frozen=True)
class Workload:
    name: str
    node: str
    network: str
    ip: str | None  # None: Calico IPAM picks one
    image: str
    command: tuple[str, ...] | None  # None: the image's default command


def plain(value: Any) -> Any:
    """A model object (or an inventory's) as JSON-able dicts and lists."""
    if is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple):
        return [plain(item) for item in value]
    return value


# --------------------------------------------------------------------------- YAML


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, which plain PyYAML silently collapses
    (a second `ip:` would otherwise quietly win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable key: the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"duplicate key {show(key)}", key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_limited(path, limit: int, source: str, what: str) -> str:
    """A UTF-8 text file of at most `limit` bytes (only that much is read, even from a device or
    a pipe); TopologyError otherwise. OSError (e.g. FileNotFoundError) is the caller's."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise TopologyError(f"{source}: larger than {limit >> 10} KiB, too large for a {what} "
                            "file: give the lab description itself (is this the right file?)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise TopologyError(f"{source}: not a UTF-8 text file") from None


def load_yaml(text: str, source: str) -> object:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = err.problem or "syntax error"
        # "while parsing a ..." contexts are noise; others ("expected a single document") explain.
        if err.context and not err.context.startswith("while"):
            problem = f"{err.context}, {problem}"
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise TopologyError(f"{source}: {where}not valid YAML: {one_line(problem)}") from None
    except yaml.reader.ReaderError as err:  # control characters: it knows only an offset
        line = text.count("\n", 0, err.position) + 1
        column = err.position - text.rfind("\n", 0, err.position)
        raise TopologyError(
            f"{source}: line {line}, column {column}: not valid YAML: "
            f"unacceptable character #x{err.character:04x}"
        ) from None
    except yaml.YAMLError as err:
        raise TopologyError(f"{source}: not valid YAML: {one_line(str(err))}") from None


# --------------------------------------------------------------------------- value checkers


class Location(Protocol):
    """Where a value sits in its file; each loader has its own, with its own error type."""

    def key(self, key: str) -> Location: ...

    def index(self, index: int) -> Location: ...

    def fail(self, reason: str) -> NoReturn: ...


Check = Callable[[Location, Any], Any]


def one_line(text: str) -> str:
    return " ".join(text.split())


def show(value: object) -> str:
    text = one_line(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


def describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    return f"{show(value)} ({kinds.get(type(value), type(value).__name__)})"


def parse_or_none(parse: Callable[[str], Any], text: str) -> Any:
    # The caller fails outside the except block, so its error carries no chained traceback.
    try:
        return parse(text)
    except ValueError:
        return None


def sequence(loc: Location, value: object) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        loc.fail(f"expected a list, got {describe(value)}")
    return list(value)


def list_of(check: Check) -> Check:
    return lambda loc, value: tuple(check(loc.index(i), item) for i, item in enumerate(sequence(loc, value)))


def string(loc: Location, value: object) -> str:
    if not isinstance(value, str):
        loc.fail(f"expected a string, got {describe(value)}")
    return value


def non_empty_str(loc: Location, value: object) -> str:
    if not string(loc, value).strip():
        loc.fail("must not be empty")
    return value


def matching(pattern: re.Pattern[str], what: str) -> Check:
    def check(loc: Location, value: object) -> str:
        if not pattern.fullmatch(string(loc, value)):
            loc.fail(f"{show(value)} is not a valid {what} (must match {pattern.pattern})")
        return value
    return check


def one_of(*choices: str) -> Check:
    def check(loc: Location, value: object) -> str:
        if string(loc, value) not in choices:
            loc.fail(f"{show(value)} is not one of: {', '.join(choices)}")
        return value
    return check


def int_in(low: int, high: int) -> Check:
    def check(loc: Location, value: object) -> int:
        if not isinstance(value, int) or isinstance(value, bool):  # bool is an int subclass
            loc.fail(f"expected an integer, got {describe(value)}")
        if not low <= value <= high:
            loc.fail(f"{value} is out of range {low}..{high}")
        return value
    return check


def boolean(loc: Location, value: object) -> bool:
    if not isinstance(value, bool):
        loc.fail(f"expected true or false, got {describe(value)}")
    return value


def ipv4(loc: Location, value: object) -> str:
    ip = parse_or_none(ipaddress.IPv4Address, string(loc, value))
    if ip is None:
        loc.fail(f"{show(value)} is not an IPv4 address")
    return str(ip)
