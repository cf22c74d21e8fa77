"""Dataplane decisions without a kernel: restore texts, ipset swaps, command lists, retries."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from lab.calico import model
from lab.calico.felix import render
from lab.calico.felix.dataplane import (Dataplane, DataplaneError, canonical, ipset_update,
                                        parse_ipset_save, table_update)
from lab.calico.felix.render import IpsetSpec

SAVED_FRESH = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
COMMIT
"""


def test_canonical_maps_long_options_to_iptables_save_form():
    assert canonical("--jump felix-INPUT") == ("-j", "felix-INPUT")
    assert canonical('--match comment --comment "a b" --jump RETURN') == (
        "-m", "comment", "--comment", "a b", "-j", "RETURN")


def test_table_update_inserts_jumps_and_declares_chains():
    text, notes = table_update("filter", [("felix-INPUT", ["--append felix-INPUT --jump ACCEPT"])],
                               [("INPUT", "--jump felix-INPUT"), ("FORWARD", "--jump felix-FORWARD")],
                               SAVED_FRESH)
    assert text.splitlines() == [
        "*filter", ":felix-INPUT - [0:0]", "--append felix-INPUT --jump ACCEPT",
        "-I FORWARD 1 --jump felix-FORWARD", "-I INPUT 1 --jump felix-INPUT", "COMMIT"]
    assert len(notes) == 2


def test_table_update_moves_misplaced_and_duplicate_jumps_and_drops_stale_chains():
    saved = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER-USER - [0:0]
:felix-INPUT - [0:0]
:felix-to-gone - [0:0]
:felix-p-old-i - [0:0]
-A INPUT -j felix-INPUT
-A OUTPUT -j felix-OUTPUT
-A FORWARD -j DOCKER-USER
-A FORWARD -j felix-FORWARD
-A FORWARD -j felix-FORWARD
-A DOCKER-USER -j felix-p-old-i
-A felix-to-gone -j felix-p-old-i
COMMIT
"""
    inserts = [("INPUT", "--jump felix-INPUT"), ("OUTPUT", "--jump felix-OUTPUT"),
               ("FORWARD", "--jump felix-FORWARD")]
    text, notes = table_update("filter", [("felix-INPUT", []), ("felix-OUTPUT", []),
                                          ("felix-FORWARD", [])], inserts, saved)
    lines = text.splitlines()
    # INPUT and OUTPUT are already right; FORWARD has two copies below Docker's jump
    assert not [line for line in lines if " INPUT " in line or " OUTPUT " in line]
    assert lines.count("-D FORWARD -j felix-FORWARD") == 2
    assert "-I FORWARD 1 --jump felix-FORWARD" in lines
    # stale chains are flushed (declared) first; the one a foreign chain still uses is kept
    assert ":felix-to-gone - [0:0]" in lines and ":felix-p-old-i - [0:0]" in lines
    assert "-X felix-to-gone" in lines and "-X felix-p-old-i" not in lines
    assert lines.index("-D FORWARD -j felix-FORWARD") < lines.index("-X felix-to-gone")
    assert any("felix-p-old-i kept" in n for n in notes)


def test_table_update_nat_removes_masquerade_rule_no_longer_wanted():
    saved = """*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:felix-POSTROUTING - [0:0]
-A POSTROUTING -j felix-POSTROUTING
-A POSTROUTING -m set --match-set felix-masq-ipam-pools src -m set ! --match-set felix-all-ipam-pools dst -j MASQUERADE
-A POSTROUTING -o docker0 -j MASQUERADE
COMMIT
"""
    text, _ = table_update("nat", [("felix-POSTROUTING", [])],
                           [("POSTROUTING", "--jump felix-POSTROUTING")], saved)
    lines = text.splitlines()
    assert "-D POSTROUTING -m set --match-set felix-masq-ipam-pools src -m set ! --match-set " \
           "felix-all-ipam-pools dst -j MASQUERADE" in lines
    assert "-D POSTROUTING -o docker0 -j MASQUERADE" not in lines


def test_ipset_update_swaps_only_changed_sets():
    current = parse_ipset_save(
        "create felix-v4-a hash:ip family inet hashsize 1024 maxelem 1048576 bucketsize 12\n"
        "add felix-v4-a 10.0.0.1\n"
        "create felix-v4-b hash:ip family inet hashsize 1024 maxelem 1048576\n"
        "create felix-tmp-v4-b hash:ip family inet hashsize 1024 maxelem 1048576\n"
        "create felix-all-ipam-pools hash:net family inet hashsize 1024 maxelem 1048576\n"
        "add felix-all-ipam-pools 10.0.0.0/16\n")
    desired = (IpsetSpec("felix-v4-a", "hash:ip", frozenset({"10.0.0.1"})),
               IpsetSpec("felix-v4-b", "hash:ip", frozenset({"10.0.0.2", "10.0.0.3"})),
               IpsetSpec("felix-all-ipam-pools", "hash:net", frozenset({"10.0.0.0/16"})))
    text, notes = ipset_update(desired, current)
    assert text.splitlines() == [
        "destroy felix-tmp-v4-b",
        "create felix-tmp-v4-b hash:ip family inet maxelem 1048576",
        "add felix-tmp-v4-b 10.0.0.2", "add felix-tmp-v4-b 10.0.0.3",
        "create felix-v4-b hash:ip family inet maxelem 1048576 -exist",
        "swap felix-tmp-v4-b felix-v4-b",
        "destroy felix-tmp-v4-b"]
    assert notes == ["ipset felix-v4-b: 2 member(s)"]
    assert ipset_update(desired[:1], current) == ("", [])
    text, _ = ipset_update((IpsetSpec("felix-masq-ipam-pools", "hash:net", frozenset({"10.1.0.0/16"})),), {})
    assert "swap felix-masq-ipam-pools-tmp felix-masq-ipam-pools" in text


# -- a Dataplane over a fake command runner ----------------------------------------------------
@dataclass
class R:
    rc: int = 0
    stdout: str = ""
    stderr: str = ""


class FakeKernel:
    def __init__(self, links=()):
        self.calls: list[list[str]] = []
        self.inputs: list[str] = []
        self.links = list(links)
        self.fail: set[str] = set()

    def __call__(self, argv, check=False, input=None):
        assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
        self.calls.append(argv)
        if input is not None:
            self.inputs.append(input)
        if argv[0] in self.fail:
            return R(1, "", f"{argv[0]}: simulated failure")
        if argv[0] == "iptables-save":
            return R(0, SAVED_FRESH if argv[-1] == "filter" else "*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n")
        if argv[:3] == ["ip", "-j", "link"]:
            return R(0, json.dumps(self.links))
        if argv[:2] == ["ip", "-j"]:
            return R(0, "[]")
        return R(0)


def make_sysctls(tmp_path, ifaces=(), all_rp="0"):
    for rel in ["net/ipv4/conf/all/rp_filter", "net/ipv4/conf/default/rp_filter"] + [
            f"net/ipv4/conf/{i}/{k}" for i in ifaces for k in ("rp_filter", "route_localnet", "proxy_arp")] + [
            f"net/ipv4/neigh/{i}/proxy_delay" for i in ifaces]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(all_rp if rel.endswith("all/rp_filter") else "0")
    return str(tmp_path)


def seed():
    prof = model.Profile("net1", ("net1",), ({"action": "allow", "src_tag": "net1"},), ({"action": "allow"},))
    ep = model.Endpoint("h", "libnetwork", "libnetwork", "a" * 64, "caliaaaaaaaaaaa", "EE:EE:EE:EE:EE:EE",
                        ("net1",), ("10.65.0.1/32",))
    return model.Snapshot(ready=True, profiles=(prof,), endpoints=(ep,))


def test_apply_runs_argv_lists_and_skips_when_unchanged(tmp_path):
    kernel = FakeKernel(links=[{"ifname": "caliaaaaaaaaaaa", "flags": ["UP", "LOWER_UP"]}])
    dp = Dataplane(run=kernel, sysctl_root=make_sysctls(tmp_path, ["caliaaaaaaaaaaa"]))
    desired = render(seed(), "h")
    res = dp.apply(desired)
    assert res.ok and not res.pending
    cmds = [" ".join(c) for c in kernel.calls]
    assert "ipset restore" in cmds and "iptables-restore -w --noflush" in cmds
    assert "ip route replace 10.65.0.1/32 dev caliaaaaaaaaaaa scope link" in cmds
    assert "ip neigh replace 10.65.0.1 lladdr ee:ee:ee:ee:ee:ee dev caliaaaaaaaaaaa nud permanent" in cmds
    assert (tmp_path / "net/ipv4/conf/caliaaaaaaaaaaa/proxy_arp").read_text() == "1"
    assert (tmp_path / "net/ipv4/neigh/caliaaaaaaaaaaa/proxy_delay").read_text() == "0"
    assert (tmp_path / "net/ipv4/conf/default/rp_filter").read_text() == "1"
    n = len(kernel.calls)
    assert dp.apply(render(seed(), "h")).skipped and len(kernel.calls) == n


def test_missing_interface_is_pending_and_retried(tmp_path):
    kernel = FakeKernel(links=[])
    dp = Dataplane(run=kernel, sysctl_root=make_sysctls(tmp_path))
    desired = render(seed(), "h")
    assert dp.apply(desired).pending == ["caliaaaaaaaaaaa"]
    res = dp.apply(desired)
    assert not res.skipped and res.pending == ["caliaaaaaaaaaaa"]
    # only the cheap link check repeats: iptables text is unchanged
    assert sum(c[0] == "iptables-restore" for c in kernel.calls) == 2


def test_interface_removed_while_programming_is_pending_not_an_error(tmp_path):
    """The link list still shows the veth, but it is gone by the time its sysctls are written
    (a container being removed): Felix waits for it, it logs no error."""
    kernel = FakeKernel(links=[{"ifname": "caliaaaaaaaaaaa", "flags": ["UP", "LOWER_UP"]}])
    dp = Dataplane(run=kernel, sysctl_root=make_sysctls(tmp_path))      # no conf/caliaaaaaaaaaaa
    res = dp.apply(render(seed(), "h"))
    assert res.ok and res.pending == ["caliaaaaaaaaaaa"]
    kernel.fail = {"ip"}                   # and an interface that is there still fails loudly
    dp2 = Dataplane(run=kernel, sysctl_root=make_sysctls(tmp_path / "2", ["caliaaaaaaaaaaa"]))
    assert not dp2.apply(render(seed(), "h")).ok


def test_failures_are_reported_not_raised_and_retried(tmp_path):
    kernel = FakeKernel(links=[{"ifname": "caliaaaaaaaaaaa", "flags": ["UP", "LOWER_UP"]}])
    kernel.fail = {"iptables-restore"}
    dp = Dataplane(run=kernel, sysctl_root=make_sysctls(tmp_path, ["caliaaaaaaaaaaa"]))
    desired = render(seed(), "h")
    res = dp.apply(desired)
    assert not res.ok and any("iptables-restore" in e for e in res.errors)
    kernel.fail = set()
    res = dp.apply(desired)
    assert res.ok and not res.skipped
    assert dp.apply(desired).skipped


def test_loose_rp_filter_is_refused(tmp_path):
    kernel = FakeKernel()
    dp = Dataplane(run=kernel, sysctl_root=make_sysctls(tmp_path, all_rp="2"))
    res = dp.apply(render(seed(), "h"))
    assert not res.ok and "rp_filter is 2" in res.errors[0]
    assert kernel.calls == []
    with pytest.raises(DataplaneError):
        dp.check_kernel()
    assert dp.check_kernel(ignore_loose_rpf=True) == ["sysctl net.ipv4.conf.default.rp_filter=1"]
    snap = model.Snapshot(**{**seed().__dict__, "config": (("IgnoreLooseRPF", "true"),)})
    assert dp.apply(render(snap, "h")).ok


def test_tunnel_created_when_missing(tmp_path):
    kernel = FakeKernel(links=[])
    dp = Dataplane(run=kernel, sysctl_root=make_sysctls(tmp_path))
    snap = model.Snapshot(ready=True, config=(("IpInIpEnabled", "true"), ("IpInIpTunnelAddr", "10.65.3.0")))
    dp.apply(render(snap, "h"))
    cmds = [" ".join(c) for c in kernel.calls]
    assert "ip tunnel add tunl0 mode ipip" in cmds
    assert "ip link set tunl0 mtu 1440" in cmds and "ip link set tunl0 up" in cmds
    assert "ip addr add 10.65.3.0/32 dev tunl0" in cmds
