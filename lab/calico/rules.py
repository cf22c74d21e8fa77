"""Profile rule model of calicoctl 0.21/0.22 + libcalico 0.17 + Felix 1.4.1b2 (spec §2, §3.5).

Pure functions over plain rule dicts with Felix's field names (spec §2.1), as stored in etcd:

* `parse_rule`          the `rule add|remove (inbound|outbound)` grammar (docopt text, spec §3.5)
* `to_stored_json_dict` libcalico's Rule.to_json_dict, including its port-range crash (§2.1)
* `pprint`, `rule_show`, `rules_json`   what `rule show` / `rule json` print (§2.5, §3.5)
* `parse_rules_update`  what `rule update` accepts on stdin (libcalico Rule validation, §2.1)
* `validate_felix_rule` Felix 1.4.1b2's rule validation (KNOWN_RULE_KEYS etc., §2.1)
* `default_rules`, `rules_equal`

No etcd, no I/O. Independence rule: nothing here is shared with fixtures/.
"""
from __future__ import annotations

import ipaddress
import json
import re
from typing import Callable, Sequence

__all__ = [
    "RuleError", "PortRangeCrash", "IcmpType255", "parse_rule", "to_stored_json_dict",
    "to_stored_doc", "pprint", "rule_show", "rules_json", "parse_rules_update",
    "validate_felix_rule", "default_rules", "rules_equal",
]

VALID_ID_RE = re.compile(r"^[a-zA-Z0-9_.\-]+$")   # names, tags (§3.1; Felix VALID_ID_RE)

# calicoctl's own messages (calico_ctl/profile.py validate_arguments), printed in this order.
MSG_TAG = "Tags names can only contain numbers, letters, dots, dashes and underscores."
MSG_CIDR = "Invalid CIDR specified."
MSG_ICMP = "Invalid ICMP type or ICMP code specified."
MSG_PORTS = "Invalid SRCPORTS or DSTPORTS specified."
MSG_CIDR_VERSIONS = "Invalid or unmatching IP versions for SRCCIDR/DSTCIDR."

# libcalico 0.17 Rule.ALLOWED_KEYS and the values its __setitem__ accepts (§2.1).
LIBCALICO_KEYS = ("action", "protocol", "icmp_type", "icmp_code",
                  "src_tag", "src_selector", "src_ports", "src_net",
                  "dst_tag", "dst_selector", "dst_ports", "dst_net")
LIBCALICO_ACTIONS = ("allow", "deny", "next-tier")
LIBCALICO_PROTOCOLS = ("tcp", "udp", "icmp", "icmpv6")

# Felix 1.4.1b2 calico/common.py (§2.1).
NEGATABLE_MATCH_KEYS = ("protocol", "src_net", "src_tag", "src_selector", "src_ports",
                        "dst_net", "dst_tag", "dst_selector", "dst_ports", "icmp_type", "icmp_code")
KNOWN_RULE_KEYS = frozenset(("action", "ip_version", "log_prefix") + NEGATABLE_MATCH_KEYS
                            + tuple("!" + k for k in NEGATABLE_MATCH_KEYS))
KNOWN_ACTIONS = frozenset(("allow", "deny", "next-tier", "log"))
KERNEL_PROTOCOLS = frozenset({"tcp", "udp", "icmp", "icmpv6", "sctp", "udplite"}
                             | set(range(1, 256)) | {str(p) for p in range(1, 256)})
_ICMP_PROTOCOLS = ("icmp", "icmpv6", 1, 58, "1", "58")
KERNEL_PORT_PROTOCOLS = frozenset({"tcp", 6, "6", "udp", 17, "17", "udplite", 136, "136",
                                   "sctp", 132, "132", "dccp", 33, "33"})


class RuleError(ValueError):
    """A rule calicoctl/libcalico/Felix refuses; the message is what calicoctl prints, where known."""


class PortRangeCrash(ValueError):
    """libcalico 0.17 Rule.to_json_dict does int() on every port: a range crashes calicoctl (§2.1,
    libcalico#158). The message is Python's own, as in the real traceback's last line."""


class IcmpType255(RuleError):
    """Felix 1.4.1b2 cannot render icmp_type 255; it replaces that one rule with a DROP (§2.1) rather
    than discarding the profile, so callers may want to treat this case apart."""


def identity(value: str) -> str:
    return value


# ---------------------------------------------------------------------------------------------
# calicoctl grammar (spec §3.5)

_PROTOCOLS = ("tcp", "udp", "icmp", "icmpv6")
_CLAUSES = ("ports", "tag", "cidr")              # docopt order inside from/to
_CLAUSE_KEY = {"ports": "ports", "tag": "tag", "cidr": "net"}   # src_<key> / dst_<key>
_KEYWORDS = {"allow", "deny", "from", "to", "type", "code", *_PROTOCOLS, *_CLAUSES}


def _usage(msg: str) -> RuleError:
    # calicoctl prints its docopt usage on a grammar mismatch; we say which token is wrong.
    return RuleError(f"Invalid rule: {msg}")


def _py2_int(text) -> int | None:
    """int() as Python 2 did on a CLI string (no '_' digit separators), or None."""
    text = str(text).strip()
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else None


def _parse_ports(text: str) -> list | None:
    """calicoctl ports: comma list of N, N:M or N-M within 0..65535; ranges canonicalised to 'N:M'.
    Range ends must satisfy N < M (libcalico validate_ports; Felix agrees). None if invalid."""
    if not re.fullmatch(r"\d+([:-]\d+)?(,\d+([:-]\d+)?)*", text):
        return None
    ports: list = []
    for item in text.split(","):
        ends = [int(p) for p in re.split(r"[:-]", item)]
        if not all(0 <= p <= 65535 for p in ends) or (len(ends) == 2 and ends[0] >= ends[1]):
            return None
        ports.append(ends[0] if len(ends) == 1 else f"{ends[0]}:{ends[1]}")
    return ports


def _cidr(text) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    """netaddr.IPNetwork(text) as libcalico uses it: host bits kept, bare address = /32 or /128."""
    if not isinstance(text, str):
        return None
    try:
        return ipaddress.ip_interface(text.strip())
    except ValueError:
        return None


def parse_rule(tokens: Sequence[str]) -> dict:
    """Parse what follows `rule add|remove (inbound|outbound) [--at=N]` into a rule dict.

    Ports come back as calicoctl's parse_ports gives them (ints, ranges as "N:M" strings); storing a
    range crashes in `to_stored_json_dict`, which callers apply when writing.
    """
    toks = list(tokens)
    pos = 0

    def peek() -> str | None:
        return toks[pos] if pos < len(toks) else None

    def value(keyword: str) -> str:
        nonlocal pos
        pos += 1
        tok = peek()
        # docopt takes any next word as the <VALUE>, except an option-looking one.
        if tok is None or tok.startswith("-"):
            raise _usage(f"missing value after '{keyword}'")
        pos += 1
        return tok

    if peek() not in ("allow", "deny"):
        got = f"'{peek()}'" if toks else "nothing"
        raise _usage(f"expected 'allow' or 'deny' first, got {got}")
    raw: dict = {"action": toks[0]}
    pos = 1
    protocol = peek() if peek() in _PROTOCOLS else None
    if protocol:
        raw["protocol"] = protocol
        pos += 1
    if protocol in ("icmp", "icmpv6") and peek() == "type":
        raw["icmp_type"] = value("type")
        if peek() == "code":
            raw["icmp_code"] = value("code")
    for direction, side in (("from", "src"), ("to", "dst")):
        if peek() != direction:
            continue
        pos += 1
        for clause in _CLAUSES:
            if peek() == clause and (clause != "ports" or protocol in ("tcp", "udp")):
                raw[f"{side}_{_CLAUSE_KEY[clause]}"] = value(clause)

    if pos < len(toks):
        raise _usage(_why_unexpected(toks, pos, protocol, raw))
    return _validate_cli_values(raw, protocol)


def _why_unexpected(toks: list, pos: int, protocol: str | None, raw: dict) -> str:
    """Name the first token the grammar cannot take, and why (spec §3.5 usage text)."""
    tok = toks[pos]
    where = f"'{tok}' (token {pos + 1})"
    if tok == "ports" and protocol not in ("tcp", "udp"):
        why = "ports are only allowed after tcp or udp"
    elif tok in ("type", "code") and protocol not in ("icmp", "icmpv6"):
        why = f"{tok} is only allowed right after icmp or icmpv6"
    elif tok == "code" and "icmp_type" not in raw:
        why = "code requires a preceding type"
    elif tok in ("type", "code"):
        why = f"{tok} must come right after the protocol, before from/to"
    elif tok in _PROTOCOLS:
        why = "the protocol must come right after allow/deny, once"
    elif tok in ("allow", "deny"):
        why = "the action can only be given once, first"
    elif tok == "from":
        why = "from must come before to, once"
    elif tok == "to":
        why = "to can only be given once"
    elif tok in _CLAUSES and pos > 0 and toks[pos - 1] not in _KEYWORDS:
        why = "within from/to the order is ports, tag, cidr, each at most once"
    elif tok in _CLAUSES:
        why = f"{tok} must follow from or to"
    else:
        why = "not part of the rule grammar"
    return f"unexpected {where}: {why}"


def _validate_cli_values(raw: dict, protocol: str | None) -> dict:
    """calicoctl's validate_arguments + parse_ports + int(): all messages, in calicoctl's order."""
    errors: list[str] = []
    if any(not VALID_ID_RE.match(raw[k]) for k in ("src_tag", "dst_tag") if k in raw):
        errors.append(MSG_TAG)
    nets = {k: _cidr(raw[k]) for k in ("src_net", "dst_net") if k in raw}
    if None in nets.values():
        errors.append(MSG_CIDR)
    icmp = {k: _py2_int(raw[k]) for k in ("icmp_type", "icmp_code") if k in raw}
    if any(v is None or not 0 <= v < 255 for v in icmp.values()):   # validate_icmp_type: 0..254
        errors.append(MSG_ICMP)
    ports = {k: _parse_ports(raw[k]) for k in ("src_ports", "dst_ports") if k in raw}
    if None in ports.values():
        errors.append(MSG_PORTS)
    if nets and None not in nets.values():
        # validate_cidr_versions: one family for all CIDRs; icmp => v4, icmpv6 => v6.
        versions = {n.version for n in nets.values()}
        wanted = {"icmp": 4, "icmpv6": 6}.get(protocol)
        if len(versions) > 1 or (wanted and versions != {wanted}):
            errors.append(MSG_CIDR_VERSIONS)
    if errors:
        raise RuleError("\n".join(errors))
    rule = dict(raw)
    rule.update(icmp)
    rule.update(ports)
    rule.update({k: str(n) for k, n in nets.items()})
    return _ordered(rule)


_KEY_ORDER = ("action", "protocol", "icmp_type", "icmp_code",
              "src_tag", "src_selector", "src_ports", "src_net",
              "dst_tag", "dst_selector", "dst_ports", "dst_net")


def _ordered(rule: dict) -> dict:
    """A stable key order (the tutorial's `rule json` shows action, protocol, dst_ports)."""
    head = {k: rule[k] for k in _KEY_ORDER if k in rule}
    return {**head, **{k: v for k, v in rule.items() if k not in head}}


# ---------------------------------------------------------------------------------------------
# Storing (libcalico Rule.to_json_dict) and rendering (Rule.pprint, profile_rule_show)

def to_stored_json_dict(rule: dict) -> dict:
    """libcalico 0.17 Rule.to_json_dict: nets as strings and every port through int() — so a
    range raises PortRangeCrash('invalid literal for int() with base 10: ...') (§2.1)."""
    out = dict(rule)
    for key in ("src_ports", "dst_ports"):
        if key in out and out[key] is not None:
            try:
                out[key] = [int(p) for p in out[key]]
            except ValueError as exc:
                raise PortRangeCrash(str(exc)) from None
    for key in ("src_net", "dst_net"):
        if key in out and out[key] is not None:
            out[key] = str(out[key])
    return out


def to_stored_doc(doc: dict) -> dict:
    """A rules doc as calicoctl writes it to etcd (every rule through to_stored_json_dict)."""
    return {d: [to_stored_json_dict(r) for r in doc.get(d) or []]
            for d in ("inbound_rules", "outbound_rules")}


def pprint(rule: dict, name_of: Callable[[str], str] = identity) -> str:
    """libcalico Rule.pprint (§2.5). name_of maps tags for display (Docker network ID -> name).
    Selectors and '!' keys are not shown, as in libcalico; a missing action reads as Felix's
    default 'allow' (libcalico would raise KeyError)."""
    out = [str(rule.get("action", "allow"))]
    if "protocol" in rule:
        out.append(str(rule["protocol"]))
    if "icmp_type" in rule:
        out += ["type", str(rule["icmp_type"])]
    if "icmp_code" in rule:
        out += ["code", str(rule["icmp_code"])]
    for word, side in (("from", "src"), ("to", "dst")):
        if any(f"{side}_{k}" in rule for k in ("tag", "ports", "net")):
            out.append(word)
        if f"{side}_ports" in rule:
            out += ["ports", ",".join(str(p) for p in rule[f"{side}_ports"])]
        if f"{side}_tag" in rule:
            out += ["tag", name_of(rule[f"{side}_tag"])]
        if f"{side}_net" in rule:
            out += ["cidr", str(rule[f"{side}_net"])]
    return " ".join(out)


def rule_show(doc: dict, name_of: Callable[[str], str] = identity) -> str:
    """`profile P rule show`: print " %3d %s" per rule under each heading (§3.5)."""
    lines = []
    for heading, key in (("Inbound rules:", "inbound_rules"), ("Outbound rules:", "outbound_rules")):
        lines.append(heading)
        lines += [" %3d %s" % (i, pprint(r, name_of)) for i, r in enumerate(doc.get(key) or [], 1)]
    return "\n".join(lines) + "\n"


def _map_tags(rule: dict, name_of: Callable[[str], str]) -> dict:
    return {k: (name_of(v) if k in ("src_tag", "dst_tag") else v) for k, v in rule.items()}


def rules_json(doc: dict, name_of: Callable[[str], str] = identity) -> str:
    """`profile P rule json`: `print rules.to_json(indent=2)` then `print ""` (§3.5).

    Python 2's json.dumps with indent used ', ' as item separator, hence the trailing spaces the
    tutorial's web-rule.json shows. Rules go through to_json_dict, so a stored range crashes here
    too (PortRangeCrash)."""
    body = {d: [_ordered(_map_tags(to_stored_json_dict(r), name_of)) for r in doc.get(d) or []]
            for d in ("inbound_rules", "outbound_rules")}
    return json.dumps(body, indent=2, separators=(", ", ": ")) + "\n\n"


# ---------------------------------------------------------------------------------------------
# `rule update` input: libcalico 0.17 Rule(**rule) validation (§2.1)

def _libcalico_ports_ok(ports) -> bool:
    """pycalico.util.validate_ports: ints (or int-able strings) 0..65535, 'N:M' with N < M."""
    if not isinstance(ports, list):
        return False
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, (int, str)):
            return False
        ends = str(port).split(":")
        nums = [_py2_int(e) for e in ends]
        if len(ends) > 2 or None in nums or not all(0 <= n <= 65535 for n in nums):
            return False
        if len(nums) == 2 and nums[0] >= nums[1]:
            return False
    return True


def _libcalico_rule(rule) -> dict:
    if not isinstance(rule, dict):
        raise RuleError(f"Rule must be a JSON object, not {json.dumps(rule)}")
    out = {}
    for key, value in rule.items():
        if key not in LIBCALICO_KEYS:
            raise RuleError(f"Key {key} is not allowed on Rule.")
        bad = RuleError(f"'{value}' is not allowed for key '{key}'")
        if key == "action" and value not in LIBCALICO_ACTIONS:
            raise bad
        if key == "protocol" and value not in LIBCALICO_PROTOCOLS + (None,):
            raise bad
        if key in ("src_tag", "dst_tag") and not (isinstance(value, str) and VALID_ID_RE.match(value)):
            raise bad
        if key in ("src_selector", "dst_selector") and not isinstance(value, str):
            raise bad      # libcalico does not parse selectors; Felix does (inert for Docker 0.x)
        if key in ("src_ports", "dst_ports") and not _libcalico_ports_ok(value):
            raise bad
        if key in ("icmp_type", "icmp_code"):
            num = None if isinstance(value, bool) else _py2_int(value)
            if num is None or not 0 <= num < 255:                   # validate_icmp_type
                raise bad
        if key in ("src_net", "dst_net"):
            net = _cidr(value)
            if net is None:
                raise RuleError(f"invalid IPNetwork {value}")      # netaddr AddrFormatError
            value = str(net)
        out[key] = value
    return _ordered(out)


def parse_rules_update(text: str) -> dict:
    """What `profile P rule update` accepts on stdin: a JSON object with inbound_rules and
    outbound_rules (missing = [], other top-level keys such as "id" ignored), every rule valid
    for libcalico's Rule. Returns {"inbound_rules": [...], "outbound_rules": [...]}; ports are
    left as given (store through to_stored_json_dict, which casts them and crashes on ranges)."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise RuleError(f"No JSON object could be decoded ({exc})") from None
    if not isinstance(doc, dict):
        raise RuleError("Rules JSON must be an object with inbound_rules and outbound_rules")
    out = {}
    for key in ("inbound_rules", "outbound_rules"):
        rules = doc.get(key)
        if rules is None:
            rules = []
        if not isinstance(rules, list):
            raise RuleError(f"{key} must be a list")
        out[key] = [_libcalico_rule(r) for r in rules]
    return out


# ---------------------------------------------------------------------------------------------
# Felix 1.4.1b2 validation (calico/common.py _validate_rules / _validate_rule_match_criteria)

def _felix_port_error(port) -> str | None:
    """Felix validate_rule_port: JSON int 0..65535, or 'N:M' with 0 <= N < M <= 65535."""
    if isinstance(port, int) and not isinstance(port, bool):
        return "integer out of range" if not 0 <= port <= 65535 else None
    if not isinstance(port, str):
        return "neither integer nor string"
    fields = port.split(":")
    if len(fields) != 2:
        return "range unparseable"
    start, end = (_py2_int(f) for f in fields)
    if start is None or end is None or start >= end or start < 0 or end > 65535:
        return "range invalid"
    return None


def validate_felix_rule(rule: dict) -> None:
    """Raise RuleError (with Felix's reasons) if Felix 1.4.1b2 would reject this rule. Felix then
    treats the whole profile's rules as unusable; callers decide. icmp_type 255 alone raises
    IcmpType255 (Felix renders that rule as DROP instead)."""
    if not isinstance(rule, dict):
        raise RuleError(f"Rule should be a dict: {rule!r}")
    rule = {k: v for k, v in rule.items() if v is not None}        # Felix drops None fields
    ip_version = rule.get("ip_version")
    if ip_version is not None and ip_version not in (4, 6):
        raise RuleError(f"Invalid ip_version in rule {rule}.")
    issues: list[str] = []
    protocol = rule.get("protocol")
    if "action" in rule and rule["action"] not in KNOWN_ACTIONS:
        issues.append(f"Invalid action in rule {rule}.")
    if ip_version == 4 and protocol == "icmpv6":
        issues.append(f"Using icmpv6 with IPv4 in rule {rule}.")
    if ip_version == 6 and protocol == "icmp":
        issues.append(f"Using icmp with IPv6 in rule {rule}.")
    if "log_prefix" in rule and not isinstance(rule["log_prefix"], str):
        issues.append("Log prefix should be a string")
    type255 = False
    for neg in ("", "!"):
        proto = rule.get(neg + "protocol")
        if proto is not None and (isinstance(proto, bool) or proto not in KERNEL_PROTOCOLS):
            issues.append(f"Invalid {neg}protocol {proto} in rule {rule}")
        for key in (neg + "src_tag", neg + "dst_tag"):
            if key in rule and not (isinstance(rule[key], str) and VALID_ID_RE.match(rule[key])):
                issues.append(f"Invalid {key} {rule[key]!r} in rule {rule}.")
        for key in (neg + "src_selector", neg + "dst_selector"):
            if key in rule and not isinstance(rule[key], str):
                issues.append(f"Invalid {key} {rule[key]!r} in rule {rule}.")
        for key in (neg + "src_net", neg + "dst_net"):
            net = _cidr(rule[key]) if key in rule else None
            if key in rule and (net is None or (ip_version and net.version != ip_version)):
                issues.append(f"Invalid CIDR (version {ip_version}) in rule {rule}.")
        for key in (neg + "src_ports", neg + "dst_ports"):
            if key not in rule:
                continue
            if not isinstance(rule[key], list):
                issues.append(f"Expected ports to be a list in rule {rule}.")
                continue
            # Even negated port matches need the positive protocol (iptables -p ... --dport).
            if isinstance(protocol, bool) or protocol not in KERNEL_PORT_PROTOCOLS:
                issues.append(f"{key} is not allowed for protocol {protocol} in rule {rule}")
            for port in rule[key]:
                error = _felix_port_error(port)
                if error:
                    issues.append(f"Invalid port {port} ({error}) in rule {rule}.")
        icmp_type, icmp_code = rule.get(neg + "icmp_type"), rule.get(neg + "icmp_code")
        if icmp_type is not None:
            if not isinstance(icmp_type, int) or isinstance(icmp_type, bool):
                issues.append(f"ICMP type is not an integer in rule {rule}.")
            elif not 0 <= icmp_type <= 255:
                issues.append(f"ICMP type is out of range in rule {rule}.")
            elif icmp_type == 255:
                type255 = True
        if icmp_code is not None:
            if not isinstance(icmp_code, int) or isinstance(icmp_code, bool):
                issues.append(f"ICMP code is not an integer in rule {rule}.")
            elif not 0 <= icmp_code <= 255:
                issues.append("ICMP code is out of range.")
            if icmp_type is None:
                issues.append("ICMP code specified without ICMP type.")
        if (icmp_type is not None or icmp_code is not None) and protocol not in _ICMP_PROTOCOLS:
            # Spec §2.1 table; not in Felix's validator, but iptables refuses --icmp-type without -p icmp.
            issues.append(f"{neg}icmp_type/{neg}icmp_code need protocol icmp or icmpv6 in rule {rule}.")
    unknown = set(rule) - KNOWN_RULE_KEYS
    if unknown:
        issues.append(f"Rule contains unknown keys: {sorted(unknown)}.")
    if issues:
        raise RuleError(" ".join(issues))
    if type255:
        raise IcmpType255(f"ICMP type 255 is not supported by Felix; rule {rule} is rendered as DROP.")


# ---------------------------------------------------------------------------------------------

def default_rules(profile: str) -> dict:
    """Rules of `calicoctl profile add P` and the libnetwork plugin's CreateNetwork (§1.5, §2.4)."""
    return {"inbound_rules": [{"action": "allow", "src_tag": profile}],
            "outbound_rules": [{"action": "allow"}]}


def _comparable(rule: dict) -> dict:
    """What libcalico's Rule equality sees: nets as netaddr IPNetworks (equal when version, first
    and last address agree), ports as parsed (ints, 'N:M'); plus Felix's default action."""
    out = {k: v for k, v in rule.items() if v is not None}
    out.setdefault("action", "allow")
    for key in ("src_ports", "dst_ports"):
        if isinstance(out.get(key), list):
            out[key] = [_py2_int(p) if _py2_int(p) is not None else str(p).replace("-", ":")
                        for p in out[key]]
    for key in ("src_net", "dst_net"):
        net = _cidr(out[key]) if key in out else None
        if net is not None:
            out[key] = (net.version, net.network.network_address, net.network.broadcast_address)
    for key in ("icmp_type", "icmp_code"):
        if key in out and _py2_int(out[key]) is not None:
            out[key] = _py2_int(out[key])
    return out


def rules_equal(a: dict, b: dict) -> bool:
    """Rule equality as calicoctl uses it for "Rule already present, skipping." and `rule remove
    <spec>` (libcalico Rule is a dict; spec §3.5)."""
    return _comparable(a) == _comparable(b)
