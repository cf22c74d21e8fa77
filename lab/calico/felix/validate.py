"""Felix 1.4.1b2 validation of rules and endpoints (calico/common.py), as far as the
dataplane needs it: a rule that fails becomes a DROP, an endpoint that fails is ignored.

`lab.calico.rules.validate_felix_rule` is used too when that module provides it; either
validator refusing a rule makes it invalid.
"""
from __future__ import annotations

import ipaddress
import re

NEGATABLE_MATCH_KEYS = ("protocol", "src_net", "src_tag", "src_selector", "src_ports",
                        "dst_net", "dst_tag", "dst_selector", "dst_ports",
                        "icmp_type", "icmp_code")
KNOWN_RULE_KEYS = frozenset(("action", "ip_version", "log_prefix")
                            + NEGATABLE_MATCH_KEYS
                            + tuple("!" + k for k in NEGATABLE_MATCH_KEYS))
KNOWN_ACTIONS = frozenset(("allow", "deny", "next-tier", "log"))
KERNEL_PROTOCOLS = frozenset({"tcp", "udp", "icmp", "icmpv6", "sctp", "udplite"}
                             | {str(p) for p in range(1, 256)})
KERNEL_PORT_PROTOCOLS = frozenset({"tcp", "6", "udp", "17", "udplite", "136",
                                   "sctp", "132", "dccp", "33"})
VALID_ID_RE = re.compile(r"^[a-zA-Z0-9_.\-]+$")
VALID_IFACE_RE = re.compile(r"^[a-zA-Z0-9_-]{1,15}$")
INVALID_LOG_CHARS = re.compile(r"[^a-zA-Z0-9_:-]")
_MAC_RE = re.compile(r"^[0-9a-fA-F]{1,2}([:-][0-9a-fA-F]{1,2}){5}$")


class Invalid(ValueError):
    pass


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _canonical_protocol(p):
    if _is_int(p):
        p = str(p)
    if not isinstance(p, str) or p not in KERNEL_PROTOCOLS:
        return None
    return p


def _canonical_cidr(value, ip_version):
    if not isinstance(value, str):
        return None
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError:
        return None
    if ip_version is not None and iface.version != ip_version:
        return None
    return str(iface)          # netaddr keeps host bits too: "10.0.0.1/8", "10.0.0.1/32"


def port_error(port) -> str | None:
    """Felix validate_rule_port: an int 0-65535 or an "N:M" string with N < M."""
    if _is_int(port):
        return None if 0 <= port <= 65535 else "integer out of range"
    if not isinstance(port, str):
        return "neither integer nor string"
    fields = port.split(":")
    if len(fields) != 2:
        return "range unparseable"
    try:
        start, end = int(fields[0]), int(fields[1])
    except ValueError:
        return "range invalid"
    if start >= end or start < 0 or end > 65535:
        return "range invalid"
    return None


def canonical_rule(rule) -> dict:
    """Validate one rule and return its canonical copy (None values dropped, protocol as a
    string, CIDRs normalised, log prefix sanitised). Raises Invalid with Felix's complaint."""
    if not isinstance(rule, dict):
        raise Invalid(f"Rule should be a dict: {rule!r}")
    rule = {k: v for k, v in rule.items() if v is not None}
    issues: list[str] = []
    ip_version = rule.get("ip_version")
    if ip_version is not None and ip_version not in (4, 6):
        raise Invalid(f"Invalid ip_version in rule {rule}.")
    unknown = set(rule) - KNOWN_RULE_KEYS
    if unknown:
        issues.append(f"Rule contains unknown keys: {sorted(unknown)}.")
    for neg in ("", "!"):
        key = neg + "protocol"
        if key in rule:
            proto = _canonical_protocol(rule[key])
            if proto is None:
                issues.append(f"Invalid {key} {rule[key]!r}")
            else:
                rule[key] = proto
        protocol = rule.get("protocol")
        if ip_version == 4 and protocol == "icmpv6":
            issues.append("Using icmpv6 with IPv4.")
        if ip_version == 6 and protocol == "icmp":
            issues.append("Using icmp with IPv6.")
        for key in (neg + "src_tag", neg + "dst_tag"):
            if key in rule and not (isinstance(rule[key], str) and VALID_ID_RE.match(rule[key])):
                issues.append(f"Invalid {key}: {rule[key]!r}.")
        for key in (neg + "src_selector", neg + "dst_selector"):
            if key in rule and not isinstance(rule[key], str):
                issues.append(f"Invalid {key}: {rule[key]!r}")
        for key in (neg + "src_net", neg + "dst_net"):
            if key in rule:
                cidr = _canonical_cidr(rule[key], ip_version)
                if cidr is None:
                    issues.append(f"Invalid CIDR {rule[key]!r} in {key}.")
                else:
                    rule[key] = cidr
        for key in (neg + "src_ports", neg + "dst_ports"):
            if key not in rule:
                continue
            ports = rule[key]
            if not isinstance(ports, list):
                issues.append(f"Expected {key} to be a list.")
                continue
            if protocol not in KERNEL_PORT_PROTOCOLS:
                issues.append(f"{key} is not allowed for protocol {protocol}.")
            for port in ports:
                err = port_error(port)
                if err:
                    issues.append(f"Invalid port {port!r} ({err}).")
        itype, icode = rule.get(neg + "icmp_type"), rule.get(neg + "icmp_code")
        if itype is not None and not (_is_int(itype) and 0 <= itype <= 255):
            issues.append(f"Invalid {neg}icmp_type {itype!r}.")
        if icode is not None:
            if not (_is_int(icode) and 0 <= icode <= 255):
                issues.append(f"Invalid {neg}icmp_code {icode!r}.")
            if itype is None:
                issues.append("ICMP code specified without ICMP type.")
    action = rule.get("action")
    if action is not None and action not in KNOWN_ACTIONS:
        issues.append(f"Invalid action {action!r}.")
    if "log_prefix" in rule:
        if not isinstance(rule["log_prefix"], str):
            issues.append("Log prefix should be a string")
        else:
            rule["log_prefix"] = INVALID_LOG_CHARS.sub("_", rule["log_prefix"])[:27]
    if issues:
        raise Invalid(" ".join(issues))
    external = _external_validator()
    if external is not None:
        _check_external(external, rule)
    return rule


def _external_validator():
    try:
        from lab.calico import rules as shared_rules   # written by another engineer
    except Exception:                                   # noqa: BLE001 - absent or broken: fall back
        return None
    return getattr(shared_rules, "validate_felix_rule", None)


def _check_external(validate, rule) -> None:
    """Accept the common conventions: raise on error, or return False / a non-empty list of
    problems / an error string. None, True, an empty list or a dict mean valid."""
    try:
        result = validate(dict(rule))
    except (ValueError, TypeError, KeyError) as exc:
        if type(exc).__name__ == "IcmpType255":      # valid; the renderer turns it into a DROP
            return
        raise Invalid(str(exc)) from exc
    if result is False:
        raise Invalid("rejected by lab.calico.rules.validate_felix_rule")
    if isinstance(result, str) and result:
        raise Invalid(result)
    if isinstance(result, (list, tuple)) and result and all(isinstance(x, str) for x in result):
        raise Invalid("; ".join(result))


def profile_issues(inbound, outbound) -> list[str]:
    """Felix validate_rules: one bad rule makes the whole profile's rules unusable."""
    issues = []
    for direction, rules in (("inbound", inbound), ("outbound", outbound)):
        for i, rule in enumerate(rules):
            try:
                canonical_rule(rule)
            except Invalid as exc:
                issues.append(f"{direction} rule {i + 1}: {exc}")
    return issues


def canonical_mac(mac) -> str | None:
    if not isinstance(mac, str) or not _MAC_RE.match(mac):
        return None
    return ":".join(f"{int(part, 16):02x}" for part in re.split(r"[:-]", mac))


def endpoint_issues(ep, local: bool, iface_prefix: str) -> list[str]:
    """Felix validate_endpoint for a model.Endpoint; an endpoint with issues is ignored."""
    issues = []
    if not VALID_ID_RE.match(ep.endpoint_id or ""):
        issues.append(f"Invalid endpoint ID {ep.endpoint_id!r}.")
    if not isinstance(ep.name, str) or not VALID_IFACE_RE.match(ep.name):
        issues.append(f"'name' must be a valid interface name, not {ep.name!r}.")
    elif local and not ep.name.startswith(iface_prefix):
        issues.append(f"Interface {ep.name!r} does not start with {iface_prefix!r}.")
    if ep.state not in ("active", "inactive"):
        issues.append("Expected 'state' to be one of active/inactive.")
    if ep.mac is not None and ep.mac != "" and canonical_mac(ep.mac) is None:
        issues.append("Invalid MAC address.")
    for pid in ep.profile_ids:
        if not isinstance(pid, str) or not VALID_ID_RE.match(pid):
            issues.append(f"Invalid profile ID {pid!r}.")
    for net in ep.ipv4_nets:
        if _canonical_cidr(net, 4) is None:
            issues.append(f"IP address {net!r} is not a valid IPv4 CIDR.")
    return issues
