"""iptables fragments exactly as Felix 1.4.1b2 writes them (fiptgenerator.py, dispatch.py,
frules.py, masq.py): every rule is an "--append <chain> …" line for iptables-restore.

Pure functions; IPv4 only (the lab has no IPv6).
"""
from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass

from . import names as n
from .validate import Invalid, canonical_rule

MAX_MULTIPORT_ENTRIES = 15
PACKET_LOG_LEVEL = 5          # syslog.LOG_NOTICE
PARSE_ERROR_COMMENT = "ERROR failed to parse rules"
MISSING_CHAIN_COMMENT = "WARNING Missing chain"


class RenderError(Exception):
    """A (validated) rule that this generator cannot express: it becomes a DROP."""


@dataclass(frozen=True)
class ChainConfig:
    iface_prefix: str = "cali"
    mark_accept: int = 0x1000000
    mark_next_tier: int = 0x2000000
    drop_action: str = "DROP"              # DropActionOverride
    default_input_action: str = "DROP"     # DefaultEndpointToHostAction
    metadata_addr: str | None = None
    metadata_port: int = 8775
    failsafe_in: tuple[int, ...] = (22,)
    failsafe_out: tuple[int, ...] = (2379, 2380, 4001, 7001)

    @property
    def iface_match(self) -> str:
        return self.iface_prefix + "+"

    @property
    def accept(self) -> str:
        return f"{self.mark_accept:#x}"

    @property
    def next_tier(self) -> str:
        return f"{self.mark_next_tier:#x}"


def _join(*parts) -> str:
    return " ".join(str(p) for p in parts if p is not None and p != "")


def drop_rules(cfg: ChainConfig, chain: str, rule_spec: str | None = None,
               comment: str | None = None) -> list[str]:
    comment_str = None
    if comment is not None:
        comment_str = f'-m comment --comment "{comment[:255]}"'
    rules = []
    if cfg.drop_action.startswith("LOG-"):
        rules.append(_join("--append", chain, rule_spec,
                           '--jump LOG --log-prefix "calico-drop: " --log-level 4', comment_str))
    if cfg.drop_action.endswith("ACCEPT"):
        action = '--jump ACCEPT -m comment --comment "!SECURITY DISABLED! DROP overridden to ACCEPT"'
    else:
        action = "--jump DROP"
    rules.append(_join("--append", chain, rule_spec, action, comment_str))
    return rules


def _log_target(log_prefix: str) -> str:
    return f'LOG --log-prefix "{log_prefix}: " --log-level {PACKET_LOG_LEVEL}'


# -- global chains ------------------------------------------------------------------------
def input_chain(cfg: ChainConfig, hosts_ipset: str | None) -> list[str]:
    c = n.CHAIN_INPUT
    rules = []
    if hosts_ipset:
        rules += drop_rules(cfg, c, f"--protocol 4 --match set ! --match-set {hosts_ipset} src")
    rules += drop_rules(cfg, c, "--match conntrack --ctstate INVALID")
    rules.append(f"--append {c} --match conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT")
    rules.append(f"--append {c} --goto {n.CHAIN_FROM_IFACE} ! --in-interface {cfg.iface_match}")
    if cfg.metadata_addr is not None:
        rules.append(f"--append {c} --protocol tcp --destination {cfg.metadata_addr} "
                     f"--dport {cfg.metadata_port} --jump ACCEPT")
    rules.append(f"--append {c} --protocol udp --sport 68 --dport 67 --jump ACCEPT")
    rules.append(f"--append {c} --protocol udp --dport 53 --jump ACCEPT")
    action = cfg.default_input_action
    if action != "DROP":
        rules.append(f"--append {c} --jump {n.CHAIN_FROM_ENDPOINT}")
    if action == "DROP":
        rules += drop_rules(cfg, c, None, "Drop all packets from endpoints to the host")
    elif action != "RETURN":
        rules.append(f"--append {c} --jump {action}")
    return rules


def output_chain(cfg: ChainConfig) -> list[str]:
    c = n.CHAIN_OUTPUT
    return (drop_rules(cfg, c, "--match conntrack --ctstate INVALID")
            + [f"--append {c} --match conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
               f"--append {c} --goto {n.CHAIN_TO_IFACE} ! --out-interface {cfg.iface_match}"])


def forward_chain(cfg: ChainConfig) -> list[str]:
    c, m = n.CHAIN_FORWARD, cfg.iface_match
    return (drop_rules(cfg, c, f"--in-interface {m} --match conntrack --ctstate INVALID")
            + drop_rules(cfg, c, f"--out-interface {m} --match conntrack --ctstate INVALID")
            + [f"--append {c} --in-interface {m} --match conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
               f"--append {c} --out-interface {m} --match conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
               f"--append {c} --jump {n.CHAIN_FROM_ENDPOINT} --in-interface {m}",
               f"--append {c} --jump {n.CHAIN_TO_ENDPOINT} --out-interface {m}",
               f"--append {c} --jump ACCEPT --in-interface {m}",
               f"--append {c} --jump ACCEPT --out-interface {m}"])


def failsafe_chains(cfg: ChainConfig) -> dict[str, list[str]]:
    return {
        n.CHAIN_FAILSAFE_IN: [f"--append {n.CHAIN_FAILSAFE_IN} --protocol tcp --dport {p} --jump ACCEPT"
                              for p in cfg.failsafe_in],
        n.CHAIN_FAILSAFE_OUT: [f"--append {n.CHAIN_FAILSAFE_OUT} --protocol tcp --dport {p} --jump ACCEPT"
                               for p in cfg.failsafe_out],
    }


def host_dispatch_chains() -> dict[str, list[str]]:
    """No host endpoints in a Docker deployment: both roots just return."""
    return {c: [f'--append {c} --jump RETURN --match comment --comment "Unknown interface, return"']
            for c in (n.CHAIN_FROM_IFACE, n.CHAIN_TO_IFACE)}


def workload_dispatch_chains(cfg: ChainConfig, ifaces) -> dict[str, list[str]]:
    """felix-FROM/TO-ENDPOINT plus felix-FROM/TO-EP-PFX-<c> leaves (dispatch.py), sorted."""
    ifaces = sorted(set(ifaces))
    common = n.common_prefix(ifaces)
    by_first = defaultdict(list)
    for iface in ifaces:
        by_first[iface[len(common):][:1]].append(iface)
    chains: dict[str, list[str]] = {n.CHAIN_FROM_ENDPOINT: [], n.CHAIN_TO_ENDPOINT: []}
    root_from, root_to = chains[n.CHAIN_FROM_ENDPOINT], chains[n.CHAIN_TO_ENDPOINT]
    for first in sorted(by_first):
        members = by_first[first]
        if len(members) == 1:
            from_chain, to_chain = n.CHAIN_FROM_ENDPOINT, n.CHAIN_TO_ENDPOINT
            from_upds, to_upds = root_from, root_to
        else:
            from_chain = f"{n.CHAIN_FROM_LEAF}-{first}"
            to_chain = f"{n.CHAIN_TO_LEAF}-{first}"
            from_upds, to_upds = chains.setdefault(from_chain, []), chains.setdefault(to_chain, [])
            match = common + first + "+"
            root_from.append(f"--append {n.CHAIN_FROM_ENDPOINT} --in-interface {match} --goto {from_chain}")
            root_to.append(f"--append {n.CHAIN_TO_ENDPOINT} --out-interface {match} --goto {to_chain}")
        for iface in members:
            from_upds.append(f"--append {from_chain} --in-interface {iface} "
                             f"--goto {n.from_chain_name(iface, cfg.iface_prefix)}")
            to_upds.append(f"--append {to_chain} --out-interface {iface} "
                           f"--goto {n.to_chain_name(iface, cfg.iface_prefix)}")
        if len(members) > 1:
            from_upds.extend(drop_rules(cfg, from_chain, None, "From unknown endpoint"))
            to_upds.extend(drop_rules(cfg, to_chain, None, "To unknown endpoint"))
    root_from.extend(drop_rules(cfg, n.CHAIN_FROM_ENDPOINT, None, "From unknown endpoint"))
    root_to.extend(drop_rules(cfg, n.CHAIN_TO_ENDPOINT, None, "To unknown endpoint"))
    return chains


# -- per endpoint -------------------------------------------------------------------------
def endpoint_chain(cfg: ChainConfig, chain: str, endpoint_id: str, profile_ids, direction: str,
                   mac: str | None = None) -> list[str]:
    """felix-from-<suffix> (direction "outbound", with the MAC check) or felix-to-<suffix>."""
    rules = [f"--append {chain} --jump MARK --set-mark 0/{cfg.accept}"]
    if mac:
        rules += drop_rules(cfg, chain, f"--match mac ! --mac-source {mac}", "Incorrect source MAC")
    for profile_id in profile_ids:
        rules.append(f"--append {chain} --jump {n.profile_chain_name(profile_id, direction)}")
        rules.append(f"--append {chain} --match mark --mark {cfg.accept}/{cfg.accept} "
                     f'--match comment --comment "Profile accepted packet" --jump RETURN')
    rules += drop_rules(cfg, chain, None, f"Packet did not match any profile (endpoint {endpoint_id})")
    return rules


# -- per profile --------------------------------------------------------------------------
def rule_tags(rule: dict) -> set[str]:
    return {rule[k] for k in ("src_tag", "dst_tag", "!src_tag", "!dst_tag") if k in rule}


def split_ports(ports) -> list[list[str]]:
    """Chunks of at most 15 multiport entries (a range counts 2); [] -> [[]]."""
    chunks, chunk, used = [], [], 0
    for p in ports:
        p = str(p)
        size = 2 if ":" in p else 1
        if used + size > MAX_MULTIPORT_ENTRIES:
            chunks.append(chunk)
            chunk, used = [], 0
        chunk.append(p)
        used += size
    if chunk or not chunks:
        chunks.append(chunk)
    return chunks


def _multiport(ports) -> str:
    text = ",".join(str(p) for p in ports)
    if text.count(",") + text.count(":") + 1 > MAX_MULTIPORT_ENTRIES:
        raise RenderError(f"Too many ports ({text})")
    return text


def _rule_spec(rule: dict, tag_to_ipset: dict[str, str]) -> list[str]:
    spec: list[str] = []
    proto = rule.get("protocol")
    for neg in ("", "!"):
        p = rule.get(neg + "protocol")
        if p:
            spec += [neg, "--protocol", str(p)]
        for dirn, direction in (("src", "source"), ("dst", "destination")):
            net = rule.get(f"{neg}{dirn}_net")
            if net is not None and ":" not in net:          # IPv4 table: v6 CIDRs are omitted
                spec += [neg, f"--{direction}", net]
            tag = rule.get(f"{neg}{dirn}_tag")
            if tag is not None:
                spec += ["--match set", neg, "--match-set", tag_to_ipset[tag], dirn]
            if rule.get(f"{neg}{dirn}_selector") is not None:
                raise RenderError("selectors are not supported by this reference node")
            ports = rule.get(f"{neg}{dirn}_ports")
            if ports:
                if proto not in ("tcp", "udp"):
                    raise RenderError(f"Protocol {proto} not supported with ports")
                if neg == "":
                    spec += ["--match multiport", f"--{direction}-ports", _multiport(ports)]
                else:
                    for chunk in split_ports(ports):
                        spec += ["--match multiport", "!", f"--{direction}-ports", _multiport(chunk)]
        icmp_type = rule.get(neg + "icmp_type")
        icmp_code = rule.get(neg + "icmp_code")
        if icmp_type is not None:
            if icmp_type == 255:
                raise RenderError("the kernel cannot match ICMP type 255")
            icmp = f"{icmp_type}/{icmp_code}" if icmp_code is not None else str(icmp_type)
            if proto == "icmp":
                spec += ["--match icmp", neg, "--icmp-type", icmp]
    return spec


def _rule_fragments_inner(cfg: ChainConfig, chain: str, rule: dict,
                          tag_to_ipset: dict[str, str]) -> list[str]:
    spec = _join(*_rule_spec(rule, tag_to_ipset))
    action = rule.get("action", "allow")
    if action in ("allow", "next-tier"):
        mark = cfg.accept if action == "allow" else cfg.next_tier
        rules = [_join("--append", chain, spec, "--jump", f"MARK --set-mark {mark}/{mark}")]
        mark_match = f"--append {chain} --match mark --mark {mark}/{mark}"
        if "log_prefix" in rule:
            rules.append(f"{mark_match} --jump {_log_target(rule['log_prefix'])}")
        rules.append(f"{mark_match} --jump RETURN")
        return rules
    if action == "log":
        return [_join("--append", chain, spec, "--jump",
                      _log_target(rule.get("log_prefix", "calico-packet")))]
    if action == "deny":
        rules = drop_rules(cfg, chain, spec or None)
        if "log_prefix" in rule:
            rules.insert(0, _join("--append", chain, spec, "--jump", _log_target(rule["log_prefix"])))
        return rules
    raise RenderError(f"Unknown rule action {action}")


def rule_fragments(cfg: ChainConfig, chain: str, raw_rule, tag_to_ipset: dict[str, str]
                   ) -> tuple[list[str], set[str]]:
    """One profile rule -> its iptables fragments and the tags (ipsets) they use.

    Invalid or unrenderable rules become a single DROP ("ERROR failed to parse rules")."""
    try:
        rule = canonical_rule(raw_rule)
        if rule.get("ip_version") == 6:
            return [], set()
        src_chunks = split_ports(rule.get("src_ports", []))
        dst_chunks = split_ports(rule.get("dst_ports", []))
        out = []
        for src, dst in itertools.product(src_chunks, dst_chunks):
            copy = dict(rule, src_ports=src, dst_ports=dst)
            out += _rule_fragments_inner(cfg, chain, copy, tag_to_ipset)
        return out, rule_tags(rule)
    except (Invalid, RenderError, KeyError, TypeError, ValueError):
        return drop_rules(cfg, chain, None, PARSE_ERROR_COMMENT), set()


def profile_chain(cfg: ChainConfig, profile_id: str, rules, direction: str
                  ) -> tuple[str, list[str], set[str]]:
    """felix-p-<id>-i / -o: (chain name, fragments, tags referenced).

    rules=None (profile missing, or its rules failed validation) gives Felix's stub for a
    referenced-but-missing chain: a single DROP "WARNING Missing chain"."""
    chain = n.profile_chain_name(profile_id, direction)
    if rules is None:
        return chain, drop_rules(cfg, chain, None, MISSING_CHAIN_COMMENT), set()
    fragments, tags = [], set()
    tag_map = _TagMap()
    for rule in rules or ():
        frags, used = rule_fragments(cfg, chain, rule, tag_map)
        fragments += frags
        tags |= used
    return chain, fragments, tags


class _TagMap(dict):
    """tag -> ipset name, computed on demand."""

    def __missing__(self, tag):
        return n.tag_ipset_name(tag)


# -- nat ----------------------------------------------------------------------------------
MASQ_RULE = (f"--match set --match-set {n.MASQ_POOLS_IPSET} src "
             f"--match set ! --match-set {n.ALL_POOLS_IPSET} dst --jump MASQUERADE")
IPIP_MASQ_RULE = (f"--out-interface {n.IPIP_DEVICE} -m addrtype ! --src-type LOCAL --limit-iface-out "
                  f"-m addrtype --src-type LOCAL -j MASQUERADE")


def nat_chains(cfg: ChainConfig) -> dict[str, list[str]]:
    pre = [f"--append {n.CHAIN_PREROUTING} --jump {n.CHAIN_FIP_DNAT}"]
    if cfg.metadata_addr is not None:
        pre.append(f"--append {n.CHAIN_PREROUTING} --protocol tcp --dport 80 "
                   f"--destination 169.254.169.254/32 --jump DNAT "
                   f"--to-destination {cfg.metadata_addr}:{cfg.metadata_port}")
    return {
        n.CHAIN_PREROUTING: pre,
        n.CHAIN_POSTROUTING: [f"--append {n.CHAIN_POSTROUTING} --jump {n.CHAIN_FIP_SNAT}"],
        n.CHAIN_FIP_DNAT: [],
        n.CHAIN_FIP_SNAT: [],
    }


def restore_text(table: str, chains) -> str:
    """iptables-restore --noflush input that declares (so creates or flushes) every chain,
    then appends its rules. `chains` is an ordered iterable of (name, fragments)."""
    chains = list(chains)
    lines = [f"*{table}"]
    lines += [f":{name} - [0:0]" for name, _ in chains]
    for _, fragments in chains:
        lines += fragments
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
