"""Make the kernel of the *current* network namespace match a Desired (spec §5).

Every command is an argv list run through `run` (lab.proc.run by default; a replacement must
accept `run(argv, check=False, input=None)` and return an object with rc/stdout/stderr).
Names that came from etcd reach argv or /proc paths only after render() validated them.

Order of one apply: kernel checks -> ipsets (create/refill by swap) -> iptables filter + nat
(one atomic iptables-restore each) -> destroy stale felix ipsets -> tunl0 -> per endpoint
sysctls, routes and static ARP -> stale routes / ARP entries on prefix interfaces.

Like Felix 1.4, chains and ipsets are updated from what this process last programmed: a
datastore change rewrites only the chains whose contents changed and adds or deletes only the
changed ipset members. Drift in the kernel (a rule deleted by hand, an ipset flushed) is
repaired by the full comparison with the kernel every IptablesRefreshInterval seconds (and at
start, after a config change, which restarts real Felix, or after an error), not by unrelated
datastore changes.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
import shlex
import time
from dataclasses import dataclass, field
from typing import Callable

from . import chains as ch
from . import names as n
from .render import Desired, IpsetSpec

log = logging.getLogger("felix")

_LONG_TO_SHORT = {"--append": "-A", "--insert": "-I", "--delete": "-D", "--jump": "-j",
                  "--goto": "-g", "--match": "-m", "--protocol": "-p", "--source": "-s",
                  "--destination": "-d", "--in-interface": "-i", "--out-interface": "-o"}
KERNEL_CHAINS = {"filter": ("INPUT", "FORWARD", "OUTPUT"),
                 "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")}


class DataplaneError(Exception):
    pass


@dataclass
class ApplyResult:
    changes: list[str] = field(default_factory=list)   # what was done, one short line each
    pending: list[str] = field(default_factory=list)   # endpoint interfaces missing or down
    errors: list[str] = field(default_factory=list)
    skipped: bool = False                               # unchanged desired state: nothing run
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors


def canonical(spec: str) -> tuple[str, ...]:
    """Tokens of a rule spec with long options mapped to iptables-save's short ones."""
    return tuple(_LONG_TO_SHORT.get(t, t) for t in shlex.split(spec))


def parse_iptables_save(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """(chain names, {chain: [rule specs without "-A <chain> "]}) of one table's save output."""
    chain_names: list[str] = []
    rules: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith(":"):
            name = line[1:].split()[0]
            chain_names.append(name)
            rules.setdefault(name, [])
        elif line.startswith("-A "):
            _, chain, *rest = line.split(" ", 2)
            rules.setdefault(chain, []).append(rest[0] if rest else "")
    return chain_names, rules


def _is_ours(spec: str) -> bool:
    toks = canonical(spec)
    for i, t in enumerate(toks[:-1]):
        if t in ("-j", "-g", "--match-set") and toks[i + 1].startswith(n.FELIX_PREFIX):
            return True
    return toks == canonical(ch.IPIP_MASQ_RULE)


def _targets(spec: str) -> set[str]:
    toks = canonical(spec)
    return {toks[i + 1] for i, t in enumerate(toks[:-1]) if t in ("-j", "-g")}


def table_update(table: str, desired_chains, inserts, saved: str,
                 keep: frozenset[str] = frozenset()) -> tuple[str, list[str]]:
    """The iptables-restore --noflush text that brings a table from `saved` (iptables-save
    output) to the desired felix chains and kernel-chain inserts, and a summary of changes.
    Chains named in `keep` are wanted but left as they are (an incremental update)."""
    chains = list(desired_chains)
    desired_names = {name for name, _ in chains} | set(keep)
    existing, rules = parse_iptables_save(saved)
    notes: list[str] = []
    kernel_ops: list[str] = []
    kept_refs: set[str] = set()
    by_chain: dict[str, list[str]] = {}
    for chain, spec in inserts:
        by_chain.setdefault(chain, []).append(spec)
    managed = sorted(set(KERNEL_CHAINS.get(table, ())) | set(by_chain))
    for chain in managed:
        want = by_chain.get(chain, [])
        current = rules.get(chain, [])
        ours = [r for r in current if _is_ours(r)]
        in_place = ([canonical(r) for r in current[:len(want)]] == [canonical(w) for w in want]
                    and len(ours) == len(want))
        if in_place:
            continue
        for r in ours:
            kernel_ops.append(f"-D {chain} {r}")
        for i, w in enumerate(want, 1):
            kernel_ops.append(f"-I {chain} {i} {w}")
        notes.append(f"{table} {chain}: {len(ours)} felix rule(s) -> {len(want)} at the top")
    # references to felix chains from rules we do not own block their deletion
    for chain, specs in rules.items():
        if chain.startswith(n.FELIX_PREFIX):
            continue
        for r in specs:
            if chain not in managed or not _is_ours(r):
                kept_refs |= _targets(r)
    stale = [c for c in existing if c.startswith(n.FELIX_PREFIX) and c not in desired_names]
    deletable = [c for c in stale if c not in kept_refs]
    for c in stale:
        if c in kept_refs:
            notes.append(f"{table}: stale chain {c} kept, a foreign rule still jumps to it")
    lines = [f"*{table}"]
    lines += [f":{name} - [0:0]" for name, _ in chains]
    lines += [f":{c} - [0:0]" for c in stale]          # flush stale chains first
    for _, fragments in chains:
        lines += fragments
    lines += kernel_ops
    lines += [f"-X {c}" for c in deletable]
    lines.append("COMMIT")
    if deletable:
        notes.append(f"{table}: removed stale chains {', '.join(deletable)}")
    return "\n".join(lines) + "\n", notes


def parse_ipset_save(text: str) -> dict[str, dict]:
    sets: dict[str, dict] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "create":
            opts = parts[3:]
            info = {"type": parts[2], "members": set(), "family": "inet", "maxelem": 65536}
            for i, o in enumerate(opts[:-1]):
                if o == "family":
                    info["family"] = opts[i + 1]
                elif o == "maxelem":
                    info["maxelem"] = int(opts[i + 1])
            sets[parts[1]] = info
        elif len(parts) >= 3 and parts[0] == "add" and parts[1] in sets:
            sets[parts[1]]["members"].add(parts[2])
    return sets


def _norm_member(member: str) -> str:
    return member[:-3] if member.endswith("/32") else member


def ipset_update(desired: tuple[IpsetSpec, ...], current: dict[str, dict],
                 programmed: dict[str, tuple] | None = None) -> tuple[str, list[str]]:
    """`ipset restore` text refilling every desired set that differs (via its tmp set + swap).
    With `programmed` (set name -> ipset_key() of what was last written), a set written before
    with the same type only gets the members added or deleted since (Felix's incremental
    update; the kernel's members are not compared)."""
    lines: list[str] = []
    notes: list[str] = []
    for spec in desired:
        want = {_norm_member(m) for m in spec.members}
        cur = current.get(spec.name)
        tmp = spec.tmp_name
        last = (programmed or {}).get(spec.name)
        if last is not None and cur is not None and last[:3] == ipset_key(spec)[:3]:
            added, gone = sorted(want - last[3]), sorted(last[3] - want)
            lines += [f"add {spec.name} {m} -exist" for m in added]
            lines += [f"del {spec.name} {m} -exist" for m in gone]
            if added or gone:
                notes.append(f"ipset {spec.name}: +{len(added)} -{len(gone)} member(s)")
            continue
        if (cur is not None and cur["type"] == spec.set_type and cur["family"] == spec.family
                and cur["maxelem"] == spec.maxelem
                and {_norm_member(m) for m in cur["members"]} == want):
            if tmp in current:
                lines.append(f"destroy {tmp}")         # leftover of an interrupted rewrite
            continue
        opts = f"{spec.set_type} family {spec.family} maxelem {spec.maxelem}"
        if tmp in current:
            lines.append(f"destroy {tmp}")
        if cur is not None and (cur["type"] != spec.set_type or cur["family"] != spec.family):
            lines.append(f"destroy {spec.name}")      # swap needs equal types
        lines.append(f"create {tmp} {opts}")
        lines += [f"add {tmp} {m}" for m in sorted(want)]
        lines.append(f"create {spec.name} {opts} -exist")
        lines.append(f"swap {tmp} {spec.name}")
        lines.append(f"destroy {tmp}")
        notes.append(f"ipset {spec.name}: {len(want)} member(s)")
    return ("\n".join(lines) + "\n" if lines else ""), notes


def ipset_key(spec: IpsetSpec) -> tuple:
    """What an ipset was programmed as: (type, family, maxelem, members)."""
    return (spec.set_type, spec.family, spec.maxelem,
            frozenset(_norm_member(m) for m in spec.members))


def _default_run(argv, check=False, input=None):
    from lab.proc import run
    return run(argv, check=check, input=input)


class Dataplane:
    def __init__(self, run: Callable | None = None, sysctl_root: str = "/proc/sys",
                 resync_interval: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self._run = run or _default_run
        self._sysctl_root = sysctl_root
        self._resync = resync_interval
        self._clock = clock
        self._last_desired: Desired | None = None
        self._last_full = float("-inf")
        self._last_reconcile = float("-inf")     # last full comparison with the kernel
        self._chains: dict[str, tuple] = {}   # table -> ({chain: fragments}, inserts) written
        self._sets: dict[str, tuple] = {}                # ipset -> ipset_key() written
        self._pending: list[str] = []

    # -- helpers ------------------------------------------------------------------------
    def _cmd(self, argv, input=None, what=None):
        res = self._run(list(argv), check=False, input=input)
        if res.rc != 0:
            detail = (res.stderr or res.stdout or "").strip().replace("\n", " | ")
            raise DataplaneError(f"{what or ' '.join(argv[:3])} failed (exit {res.rc}): {detail}")
        return res.stdout

    def _json(self, argv):
        out = self._cmd(argv)
        return json.loads(out) if out.strip() else []

    def _read_sysctl(self, rel: str) -> str | None:
        try:
            with open(os.path.join(self._sysctl_root, rel)) as f:
                return f.read().strip()
        except OSError:
            return None

    def _write_sysctl(self, rel: str, value: str) -> bool:
        """Write if different; True when written."""
        if self._read_sysctl(rel) == value:
            return False
        with open(os.path.join(self._sysctl_root, rel), "w") as f:
            f.write(value)
        return True

    # -- kernel checks (spec §5.1) --------------------------------------------------------
    def check_kernel(self, ignore_loose_rpf: bool = False) -> list[str]:
        changes = []
        if self._read_sysctl("net/ipv4/conf/all/rp_filter") == "2" and not ignore_loose_rpf:
            raise DataplaneError("net.ipv4.conf.all.rp_filter is 2 (loose): refusing to program "
                                 "the dataplane (set IgnoreLooseRPF=true to override)")
        if self._write_sysctl("net/ipv4/conf/default/rp_filter", "1"):
            changes.append("sysctl net.ipv4.conf.default.rp_filter=1")
        return changes

    # -- apply ----------------------------------------------------------------------------
    def apply(self, desired: Desired, force: bool = False) -> ApplyResult:
        start = self._clock()
        result = ApplyResult()
        if (not force and desired == self._last_desired and not self._pending
                and start - self._last_full < self._resync):
            result.skipped = True
            result.seconds = self._clock() - start
            return result

        def step(name, fn, *args):
            try:
                fn(result, *args)
            except (DataplaneError, OSError, ValueError, KeyError) as exc:
                result.errors.append(f"{name}: {exc}")
            except Exception as exc:                      # noqa: BLE001 - e.g. LabError timeouts
                result.errors.append(f"{name}: {type(exc).__name__}: {exc}")

        try:
            result.changes += self.check_kernel(desired.config.ignore_loose_rpf)
        except DataplaneError as exc:
            result.errors.append(str(exc))
            result.seconds = self._clock() - start
            return result
        # a config change restarts real Felix (spec §5): it starts over against the kernel
        restarted = self._last_desired is not None and desired.config != self._last_desired.config
        reconcile = (force or restarted or start - self._last_reconcile
                     >= desired.config.iptables_refresh_interval)
        if reconcile:                     # compare with the kernel, not with what we wrote
            self._chains.clear()
            self._sets.clear()
        current_sets: dict[str, dict] = {}

        def read_sets(res):
            current_sets.update(parse_ipset_save(self._cmd(["ipset", "save"])))

        step("ipset save", read_sets)
        step("ipsets", self._apply_ipsets, desired, current_sets)
        step("iptables filter", self._apply_table, "filter", desired.filter_chains,
             desired.filter_inserts)
        step("iptables nat", self._apply_table, "nat", desired.nat_chains, desired.nat_inserts)
        step("stale ipsets", self._destroy_stale_sets, desired, current_sets)
        links: dict[str, dict] = {}

        def read_links(res):
            links.update({link["ifname"]: link for link in self._json(["ip", "-j", "link", "show"])})

        step("ip link", read_links)
        if desired.tunnel is not None:
            step("tunl0", self._apply_tunnel, desired, links)
        step("endpoints", self._apply_endpoints, desired, links)

        self._pending = list(result.pending)
        if not result.errors:
            self._last_desired = desired
            self._last_full = start
            if reconcile:
                self._last_reconcile = start
        else:                             # next time: everything, against the kernel
            self._last_desired = None
            self._last_reconcile = float("-inf")
        result.seconds = self._clock() - start
        return result

    def _apply_ipsets(self, result: ApplyResult, desired: Desired, current: dict) -> None:
        text, notes = ipset_update(desired.ipsets, current, self._sets)
        if text:
            self._cmd(["ipset", "restore"], input=text, what="ipset restore")
            result.changes += notes
        self._sets = {spec.name: ipset_key(spec) for spec in desired.ipsets}

    def _destroy_stale_sets(self, result: ApplyResult, desired: Desired, current: dict) -> None:
        wanted = {s.name for s in desired.ipsets} | {s.tmp_name for s in desired.ipsets}
        problems = []
        for name in sorted(current):
            if not name.startswith(n.FELIX_PREFIX) or name in wanted:
                continue
            res = self._run(["ipset", "destroy", name], check=False, input=None)
            if res.rc == 0:
                result.changes.append(f"ipset {name} destroyed")
            else:
                problems.append(f"{name} ({(res.stderr or '').strip()})")
        if problems:
            raise DataplaneError("cannot destroy stale ipsets, will retry: " + ", ".join(problems))

    def _apply_table(self, result: ApplyResult, table: str, chains, inserts) -> None:
        """Write the chains that differ from what was last written here (all of them, compared
        with the kernel, when nothing is recorded: at start, after an error, at refresh)."""
        chains, inserts = list(chains), tuple(inserts)
        written = self._chains.get(table)
        fresh = {name: tuple(frags) for name, frags in chains}
        if written is not None and written == (fresh, inserts):
            return
        changed = [(name, frags) for name, frags in chains
                   if written is None or written[0].get(name) != tuple(frags)]
        keep = frozenset(fresh) - {name for name, _ in changed}
        saved = self._cmd(["iptables-save", "-t", table])
        restore, notes = table_update(table, changed, inserts, saved, keep)
        before = parse_iptables_save(saved)[1]
        self._cmd(["iptables-restore", "-w", "--noflush"], input=restore,
                  what=f"iptables-restore ({table})")
        self._chains[table] = (fresh, inserts)
        after = parse_iptables_save(self._cmd(["iptables-save", "-t", table]))[1]
        changed_names = sorted(c for c in set(before) | set(after)
                               if c.startswith(n.FELIX_PREFIX) and before.get(c) != after.get(c))
        if changed_names:
            result.changes.append(f"{table}: rewrote {len(changed_names)} chain(s): "
                                  + ", ".join(changed_names[:6])
                                  + (" …" if len(changed_names) > 6 else ""))
        result.changes += notes

    def _apply_tunnel(self, result: ApplyResult, desired: Desired, links: dict) -> None:
        t = desired.tunnel
        if t.name not in links:
            self._cmd(["ip", "tunnel", "add", t.name, "mode", "ipip"])
            result.changes.append(f"created {t.name}")
            links.update({link["ifname"]: link for link in self._json(["ip", "-j", "link", "show"])})
        link = links.get(t.name, {})
        if link.get("mtu") != t.mtu:
            self._cmd(["ip", "link", "set", t.name, "mtu", str(t.mtu)])
            result.changes.append(f"{t.name} mtu {t.mtu}")
        if "UP" not in link.get("flags", []):
            self._cmd(["ip", "link", "set", t.name, "up"])
            result.changes.append(f"{t.name} up")
        addrs = self._json(["ip", "-j", "-4", "addr", "show", "dev", t.name])
        have = {f"{a['local']}/{a['prefixlen']}" for entry in addrs
                for a in entry.get("addr_info", []) if a.get("family") == "inet"}
        want = {f"{t.address}/32"} if t.address else set()
        for a in sorted(have - want):
            self._cmd(["ip", "addr", "del", a, "dev", t.name])
            result.changes.append(f"{t.name} address {a} removed")
        for a in sorted(want - have):
            self._cmd(["ip", "addr", "add", a, "dev", t.name])
            result.changes.append(f"{t.name} address {a}")

    def _apply_endpoints(self, result: ApplyResult, desired: Desired, links: dict) -> None:
        prefix = desired.config.iface_prefix
        routes = self._json(["ip", "-j", "-4", "route", "show", "table", "main"])
        neighs = self._json(["ip", "-j", "-4", "neigh", "show"])
        have_routes = {(_host(r.get("dst", "")), r.get("dev")): r for r in routes}
        have_neigh = {(ne.get("dst"), ne.get("dev")): ne for ne in neighs}
        wanted_routes: set[tuple[str, str]] = set()
        wanted_neigh: set[tuple[str, str]] = set()
        rendered_ifaces = {ep.iface for ep in desired.endpoints}
        for ep in desired.endpoints:
            for ip in ep.ipv4_addrs:
                wanted_routes.add((ip, ep.iface))
                if ep.mac:
                    wanted_neigh.add((ip, ep.iface))
            link = links.get(ep.iface)
            flags = link.get("flags", []) if link else []
            if link is None or "UP" not in flags or "LOWER_UP" not in flags:
                result.pending.append(ep.iface)
                continue
            try:
                self._program_endpoint(result, ep, have_routes, have_neigh)
            except (DataplaneError, OSError):
                # removed while we worked on it (a container going away): as Felix, wait for
                # it quietly; an interface that is still there is a real failure
                if self._iface_exists(ep.iface):
                    raise
                result.pending.append(ep.iface)
        self._remove_unwanted(result, prefix, have_routes, have_neigh, wanted_routes,
                              wanted_neigh, rendered_ifaces)

    def _program_endpoint(self, result: ApplyResult, ep, have_routes: dict, have_neigh: dict) -> None:
        """sysctls, /32 routes and static ARP entries of one endpoint whose interface is up."""
        for rel, value in ep.sysctls:
            if self._write_sysctl(rel, value):
                result.changes.append(f"sysctl {rel.replace('/', '.')}={value}")
        for ip in ep.ipv4_addrs:
            r = have_routes.get((ip, ep.iface))
            if r is None or r.get("scope") != "link" or "linkdown" in r.get("flags", []):
                self._cmd(["ip", "route", "replace", f"{ip}/32", "dev", ep.iface,
                           "scope", "link"])
                result.changes.append(f"route {ip}/32 dev {ep.iface}")
            if ep.mac:
                ne = have_neigh.get((ip, ep.iface))
                if (ne is None or (ne.get("lladdr") or "").lower() != ep.mac
                        or "PERMANENT" not in ne.get("state", [])):
                    self._cmd(["ip", "neigh", "replace", ip, "lladdr", ep.mac, "dev", ep.iface,
                               "nud", "permanent"])
                    result.changes.append(f"arp {ip} {ep.mac} dev {ep.iface}")

    def _remove_unwanted(self, result: ApplyResult, prefix: str, have_routes: dict, have_neigh: dict,
                         wanted_routes: set, wanted_neigh: set, rendered_ifaces: set) -> None:
        """Routes and static ARP entries on prefix interfaces that nobody wants any more."""
        for (dst, dev), r in sorted(have_routes.items(), key=lambda kv: str(kv[0])):
            if (not dev or not dev.startswith(prefix) or (dst, dev) in wanted_routes
                    or "/" in dst):                       # only host routes, as Felix
                continue
            if dev in rendered_ifaces and dev in result.pending:
                continue
            if self._gone_after(["ip", "route", "del", r["dst"], "dev", dev], dev):
                continue
            result.changes.append(f"route {r['dst']} dev {dev} removed")
        for (dst, dev), ne in sorted(have_neigh.items(), key=lambda kv: str(kv[0])):
            if (not dev or not dev.startswith(prefix) or (dst, dev) in wanted_neigh
                    or "PERMANENT" not in ne.get("state", [])):
                continue
            if self._gone_after(["ip", "neigh", "del", dst, "dev", dev], dev):
                continue
            result.changes.append(f"arp {dst} dev {dev} removed")

    def _gone_after(self, argv: list[str], dev: str) -> bool:
        """Run a removal; True when it failed because `dev` itself went away meanwhile
        (its routes and neighbours went with it)."""
        try:
            self._cmd(argv)
            return False
        except DataplaneError:
            if self._iface_exists(dev):
                raise
            return True

    def _iface_exists(self, iface: str) -> bool:
        return os.path.exists(os.path.join(self._sysctl_root, "net/ipv4/conf", iface))


def _host(dst: str) -> str:
    """'10.0.0.1' and '10.0.0.1/32' both mean the host route to 10.0.0.1."""
    if dst.endswith("/32"):
        dst = dst[:-3]
    try:
        return str(ipaddress.IPv4Address(dst))
    except ValueError:
        return dst
