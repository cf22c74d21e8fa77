"""Felix 1.4.1b2 names: chains, ipsets, marks and the "uniquely shorten" hash (spec §5.3, §5.4)."""
from __future__ import annotations

import hashlib

FELIX_PREFIX = "felix-"

# filter table: top-level chains (jumped to from the kernel chains)
CHAIN_INPUT = "felix-INPUT"
CHAIN_OUTPUT = "felix-OUTPUT"
CHAIN_FORWARD = "felix-FORWARD"
# workload dispatch (root and per-first-character leaf chains)
CHAIN_TO_ENDPOINT = "felix-TO-ENDPOINT"
CHAIN_FROM_ENDPOINT = "felix-FROM-ENDPOINT"
CHAIN_TO_LEAF = "felix-TO-EP-PFX"
CHAIN_FROM_LEAF = "felix-FROM-EP-PFX"
# host-endpoint dispatch (no host endpoints in Docker deployments: they just RETURN)
CHAIN_TO_IFACE = "felix-TO-HOST-IF"
CHAIN_FROM_IFACE = "felix-FROM-HOST-IF"
CHAIN_FAILSAFE_IN = "felix-FAILSAFE-IN"
CHAIN_FAILSAFE_OUT = "felix-FAILSAFE-OUT"
# per endpoint / per profile
CHAIN_TO_PREFIX = "felix-to-"
CHAIN_FROM_PREFIX = "felix-from-"
CHAIN_PROFILE_PREFIX = "felix-p-"
# nat table
CHAIN_PREROUTING = "felix-PREROUTING"
CHAIN_POSTROUTING = "felix-POSTROUTING"
CHAIN_FIP_DNAT = "felix-FIP-DNAT"
CHAIN_FIP_SNAT = "felix-FIP-SNAT"

# ipsets
IPSET_V4_PREFIX = "felix-v4-"
IPSET_TMP_V4_PREFIX = "felix-tmp-v4-"
HOSTS_IPSET_V4 = "felix-calico-hosts-4"
ALL_POOLS_IPSET = "felix-all-ipam-pools"
MASQ_POOLS_IPSET = "felix-masq-ipam-pools"

IPIP_DEVICE = "tunl0"

SHORTENED_PREFIX = "_"
MAX_NAME_PART = 16


def uniquely_shorten(string: str, length: int = MAX_NAME_PART) -> str:
    """Felix futils.uniquely_shorten: the string itself when it fits (and cannot be mistaken
    for a shortened one), else '_' + the first length-1 hex chars of sha256("<length> " + s)."""
    if len(string) <= length and not (len(string) == length
                                       and string.startswith(SHORTENED_PREFIX)):
        return string
    digest = hashlib.sha256(f"{length} {string}".encode()).hexdigest()
    return SHORTENED_PREFIX + digest[:length - len(SHORTENED_PREFIX)]


def tag_ipset_name(tag: str) -> str:
    return IPSET_V4_PREFIX + uniquely_shorten(tag)


def tmp_ipset_name(name: str) -> str:
    """The scratch set used for an atomic rewrite of `name` (then `ipset swap`)."""
    if name.startswith(IPSET_V4_PREFIX):
        return IPSET_TMP_V4_PREFIX + name[len(IPSET_V4_PREFIX):]
    return name + "-tmp"           # Felix's masq.py / HOSTS_IPSET_V4 naming


def profile_chain_name(profile_id: str, direction: str) -> str:
    """direction is "inbound" or "outbound" -> felix-p-<id>-i / -o."""
    return f"{CHAIN_PROFILE_PREFIX}{uniquely_shorten(profile_id)}-{direction[:1]}"


def interface_suffix(iface: str, prefix: str = "cali") -> str:
    if prefix and iface.startswith(prefix):
        iface = iface[len(prefix):]
    return uniquely_shorten(iface)


def to_chain_name(iface: str, prefix: str = "cali") -> str:
    return CHAIN_TO_PREFIX + interface_suffix(iface, prefix)


def from_chain_name(iface: str, prefix: str = "cali") -> str:
    return CHAIN_FROM_PREFIX + interface_suffix(iface, prefix)


def common_prefix(strings) -> str:
    """Felix futils.find_longest_prefix (empty input -> "")."""
    strings = list(strings)
    if not strings:
        return ""
    first, last = min(strings), max(strings)
    i = 0
    while i < min(len(first), len(last)) and first[i] == last[i]:
        i += 1
    return first[:i]


def mark_bits(mask: int) -> tuple[int, int]:
    """(accept, next-tier): the two lowest set bits of IptablesMarkMask."""
    bits = [1 << i for i in range(32) if mask & (1 << i)]
    if len(bits) < 2:
        raise ValueError(f"IptablesMarkMask {mask:#x} needs at least two bits")
    return bits[0], bits[1]
