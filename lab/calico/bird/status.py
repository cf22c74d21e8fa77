"""`calicoctl status` BGP tables from `birdc show protocols` output (spec §3.3). Pure.

calicoctl 0.x piped `show protocols` into birdcl, skipped everything up to BIRD's column
header `name proto table state since info`, split each row on whitespace, kept the BGP
protocols named `Mesh_…`, `Node_…` and `Global_…`, recovered the peer address from the
name and printed a PrettyTable (0.7: `+---+` borders, padding 1, cells centred).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from ..table import table

BGP_HEADERS = ("Peer address", "Peer type", "State", "Since", "Info")
PEER_TYPES = (("Mesh_", "node-to-node mesh"), ("Node_", "node specific"), ("Global_", "global"))

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")
_HEADER = re.compile(r"name\s+proto\s+table\s+state\s+since\s+info\s*$")
_DATE = re.compile(r"\d{4}-\d\d-\d\d$")
_TIME = re.compile(r"\d\d:\d\d:\d\d(\.\d+)?$")


@dataclass(frozen=True)
class ProtocolRow:
    name: str
    proto: str
    table: str
    state: str
    since: str
    info: str        # BIRD's info column, runs of spaces collapsed ("Active Socket: …")


def parse_protocols(text: str) -> list[ProtocolRow]:
    """Rows of BIRD 1.6 `show protocols`. ValueError when the column header is missing."""
    rows: list[ProtocolRow] = []
    found = False
    for raw in text.splitlines():
        line = _ANSI.sub("", raw)
        if not found:
            found = _HEADER.search(line) is not None
            continue
        line = re.sub(r"^(bird>\s*)+", "", line).strip()
        if not line:
            continue
        cols = line.split()
        if len(cols) < 5 or re.fullmatch(r"\d{4}(-.*)?", cols[0]):
            continue       # birdc's reply codes (e.g. "0000") or a truncated line
        # `timeformat protocol iso long` prints "2016-06-01 17:54:00": two tokens
        if len(cols) >= 6 and _DATE.match(cols[4]) and _TIME.match(cols[5]):
            cols = cols[:4] + [cols[4] + " " + cols[5]] + cols[6:]
        rows.append(ProtocolRow(cols[0], cols[1], cols[2], cols[3], cols[4], " ".join(cols[5:])))
    if not found:
        raise ValueError("no BIRD protocol table in the output")
    return rows


def peer_type(name: str) -> str | None:
    return next((t for prefix, t in PEER_TYPES if name.startswith(prefix)), None)


def peer_address(name: str, ipv6: bool = False) -> str:
    """`Mesh_172_17_8_101` → `172.17.8.101` (`_` → `:` for IPv6, as calicoctl did)."""
    return name.split("_", 1)[1].replace("_", ":" if ipv6 else ".")


def peer_rows(rows: Iterable[ProtocolRow], ipv6: bool = False) -> list[tuple[str, ...]]:
    """(Peer address, Peer type, State, Since, Info) for Calico's BGP protocols, in BIRD order."""
    out = []
    for row in rows:
        kind = peer_type(row.name)
        if kind is None or "_" not in row.name:
            continue
        out.append((peer_address(row.name, ipv6), kind, row.state, row.since, row.info))
    return out


def bgp_table(birdc_output: str, ipv6: bool = False) -> str:
    """The peer table calicoctl printed; BIRD's raw output if it cannot be parsed."""
    try:
        rows = parse_protocols(birdc_output)
    except ValueError:
        return birdc_output.rstrip("\n")
    return table(BGP_HEADERS, peer_rows(rows, ipv6))


def bgp_status_lines(version: int, ip: str | None, as_num: str, inherited: bool,
                     birdc_output: str | None) -> list[str]:
    """One `IPv4 BGP status` / `IPv6 BGP status` section of `calicoctl status`.

    `birdc_output` None means BIRD's control socket could not be reached. The section ends
    with the blank line calicoctl printed after it (`print str(table) + "\\n"`)."""
    lines = [f"IPv{version} BGP status"]
    if not ip:
        return lines + [f"No IPv{version} address configured.", ""]
    lines.append(f"IP: {ip}    AS Number: {as_num}" + (" (inherited)" if inherited else ""))
    if birdc_output is None:
        return lines + ["Couldn't connect to bird.", ""]
    return lines + bgp_table(birdc_output, ipv6=version == 6).split("\n") + [""]
