"""render(snapshot, hostname): the Felix 1.4.1b2 dataplane as data (spec §5), no I/O."""
from __future__ import annotations

import pytest

from lab.calico import model
from lab.calico.felix import names, render
from lab.calico.felix.chains import split_ports

HOST = "node1"
NET1 = "5e0f4c3b2a19d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3"   # a docker network id
MAC = "EE:EE:EE:EE:EE:EE"


def ep(endpoint_id, ip, profiles=("net1",), host=HOST, name=None, state="active", mac=MAC):
    return model.Endpoint(hostname=host, orchestrator_id="libnetwork", workload_id="libnetwork",
                          endpoint_id=endpoint_id, name=name or "cali" + endpoint_id[:11], mac=mac,
                          profile_ids=tuple(profiles), ipv4_nets=(f"{ip}/32",), state=state)


def default_profile(name, tags=None):
    """What `calicoctl profile add` / libnetwork CreateNetwork writes (spec §1.5)."""
    return model.Profile(name=name, tags=tuple(tags if tags is not None else [name]),
                         inbound=({"action": "allow", "src_tag": name},),
                         outbound=({"action": "allow"},))


def snap(endpoints=(), profiles=(), config=(), host_config=(("DefaultEndpointToHostAction", "RETURN"),),
         pools=(), hosts=None):
    hosts = hosts if hosts is not None else (
        model.Host(HOST, "192.168.20.1", "192.168.20.1", config=tuple(host_config)),
        model.Host("node2", "192.168.20.2", "192.168.20.2"))
    return model.Snapshot(etcd_index=7, ready=True, config=tuple(config), hosts=hosts,
                          pools=tuple(pools), profiles=tuple(profiles), endpoints=tuple(endpoints))


def seed():
    return snap(endpoints=[ep("a1a1a1a1a1a1a1", "192.168.0.1"), ep("b2b2b2b2b2b2b2", "192.168.0.2"),
                           ep("c3c3c3c3c3c3c3", "192.168.0.3", host="node2")],
                profiles=[default_profile("net1")])


# -- names ------------------------------------------------------------------------------------
def test_uniquely_shorten_pins_felix_hash():
    # value from Felix's own test_dispatch.py: interface "tapb20123456789012345", prefix "tap"
    assert names.uniquely_shorten("b20123456789012345") == "_62629f0db434d57"
    assert names.interface_suffix("tapb20123456789012345", "tap") == "_62629f0db434d57"
    # a docker network id (64 hex) used as tag and profile id
    assert names.tag_ipset_name(NET1) == "felix-v4-_1bc237e3e202488"
    assert names.profile_chain_name(NET1, "inbound") == "felix-p-_1bc237e3e202488-i"
    assert names.profile_chain_name(NET1, "outbound") == "felix-p-_1bc237e3e202488-o"


def test_short_names_kept_verbatim_except_16_char_underscore():
    assert names.tag_ipset_name("TEST_GROUP") == "felix-v4-TEST_GROUP"
    assert names.profile_chain_name("TEST_GROUP", "inbound") == "felix-p-TEST_GROUP-i"
    assert names.uniquely_shorten("x" * 16) == "x" * 16
    assert names.uniquely_shorten("_234567890123456") == "_c7f16323ec756d7"
    assert names.uniquely_shorten("_23456789012345") == "_23456789012345"
    assert names.to_chain_name("cali1a2b3c4d5e6") == "felix-to-1a2b3c4d5e6"
    assert names.from_chain_name("cali1a2b3c4d5e6") == "felix-from-1a2b3c4d5e6"


# -- global chains ----------------------------------------------------------------------------
def test_forward_chain_structure():
    assert render(seed(), HOST).chain("felix-FORWARD") == (
        "--append felix-FORWARD --in-interface cali+ --match conntrack --ctstate INVALID --jump DROP",
        "--append felix-FORWARD --out-interface cali+ --match conntrack --ctstate INVALID --jump DROP",
        "--append felix-FORWARD --in-interface cali+ --match conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
        "--append felix-FORWARD --out-interface cali+ --match conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
        "--append felix-FORWARD --jump felix-FROM-ENDPOINT --in-interface cali+",
        "--append felix-FORWARD --jump felix-TO-ENDPOINT --out-interface cali+",
        "--append felix-FORWARD --jump ACCEPT --in-interface cali+",
        "--append felix-FORWARD --jump ACCEPT --out-interface cali+",
    )


INPUT_HEAD = (
    "--append felix-INPUT --match conntrack --ctstate INVALID --jump DROP",
    "--append felix-INPUT --match conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
    "--append felix-INPUT --goto felix-FROM-HOST-IF ! --in-interface cali+",
    "--append felix-INPUT --protocol udp --sport 68 --dport 67 --jump ACCEPT",
    "--append felix-INPUT --protocol udp --dport 53 --jump ACCEPT",
)


def test_input_chain_return_appends_nothing_after_from_endpoint():
    assert render(seed(), HOST).chain("felix-INPUT") == INPUT_HEAD + (
        "--append felix-INPUT --jump felix-FROM-ENDPOINT",)


def test_input_chain_default_drop_and_accept():
    s = seed()
    drop = render(model.Snapshot(**{**s.__dict__, "hosts": (model.Host(HOST, "192.168.20.1", None),)}),
                  HOST)
    assert drop.config.default_endpoint_to_host_action == "DROP"
    assert drop.chain("felix-INPUT") == INPUT_HEAD + (
        '--append felix-INPUT --jump DROP -m comment --comment "Drop all packets from endpoints to the host"',)
    accept = render(snap(host_config=(("DefaultEndpointToHostAction", "ACCEPT"),)), HOST)
    assert accept.chain("felix-INPUT") == INPUT_HEAD + (
        "--append felix-INPUT --jump felix-FROM-ENDPOINT", "--append felix-INPUT --jump ACCEPT")


def test_per_host_config_overrides_global():
    d = render(snap(config=(("DefaultEndpointToHostAction", "ACCEPT"),)), HOST)
    assert d.config.default_endpoint_to_host_action == "RETURN"
    d = render(snap(config=(("DefaultEndpointToHostAction", "ACCEPT"),)), "node2")
    assert d.config.default_endpoint_to_host_action == "ACCEPT"


def test_output_and_host_if_chains():
    d = render(seed(), HOST)
    assert d.chain("felix-OUTPUT") == (
        "--append felix-OUTPUT --match conntrack --ctstate INVALID --jump DROP",
        "--append felix-OUTPUT --match conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
        "--append felix-OUTPUT --goto felix-TO-HOST-IF ! --out-interface cali+")
    for c in ("felix-FROM-HOST-IF", "felix-TO-HOST-IF"):
        assert d.chain(c) == (
            f'--append {c} --jump RETURN --match comment --comment "Unknown interface, return"',)
    assert d.filter_inserts == (("INPUT", "--jump felix-INPUT"), ("OUTPUT", "--jump felix-OUTPUT"),
                                ("FORWARD", "--jump felix-FORWARD"))


# -- dispatch ---------------------------------------------------------------------------------
def test_dispatch_root_only_when_first_characters_differ():
    d = render(seed(), HOST)
    assert d.chain("felix-FROM-ENDPOINT") == (
        "--append felix-FROM-ENDPOINT --in-interface calia1a1a1a1a1a --goto felix-from-a1a1a1a1a1a",
        "--append felix-FROM-ENDPOINT --in-interface calib2b2b2b2b2b --goto felix-from-b2b2b2b2b2b",
        '--append felix-FROM-ENDPOINT --jump DROP -m comment --comment "From unknown endpoint"')
    assert d.chain("felix-TO-ENDPOINT")[-1] == \
        '--append felix-TO-ENDPOINT --jump DROP -m comment --comment "To unknown endpoint"'
    assert not [c for c in d.chain_names() if "PFX" in c]
    # the remote endpoint gets no chains on this host
    assert "felix-to-c3c3c3c3c3c" not in d.chain_names()


def test_dispatch_leaf_chains_for_shared_first_character():
    # (Felix's test_dispatch also has "tapb20123456789012345"; endpoint validation caps names at 15)
    ifaces = ["tapa1", "tapa2", "tapa3", "tapb1", "tapb2", "tapc"]
    s = snap(endpoints=[ep(f"e{i}", f"10.0.0.{i}", name=name) for i, name in enumerate(ifaces)],
             profiles=[default_profile("net1")], config=(("InterfacePrefix", "tap"),))
    d = render(s, HOST)
    assert d.chain("felix-TO-ENDPOINT") == (
        "--append felix-TO-ENDPOINT --out-interface tapa+ --goto felix-TO-EP-PFX-a",
        "--append felix-TO-ENDPOINT --out-interface tapb+ --goto felix-TO-EP-PFX-b",
        "--append felix-TO-ENDPOINT --out-interface tapc --goto felix-to-c",
        '--append felix-TO-ENDPOINT --jump DROP -m comment --comment "To unknown endpoint"')
    assert d.chain("felix-FROM-EP-PFX-b") == (
        "--append felix-FROM-EP-PFX-b --in-interface tapb1 --goto felix-from-b1",
        "--append felix-FROM-EP-PFX-b --in-interface tapb2 --goto felix-from-b2",
        '--append felix-FROM-EP-PFX-b --jump DROP -m comment --comment "From unknown endpoint"')
    assert {"felix-FROM-EP-PFX-a", "felix-TO-EP-PFX-a", "felix-TO-EP-PFX-b"} <= set(d.chain_names())


def test_dispatch_uses_common_prefix_of_all_interfaces():
    s = snap(endpoints=[ep("1aa", "10.0.0.1", name="cali1aa"), ep("1ab", "10.0.0.2", name="cali1ab")],
             profiles=[default_profile("net1")])
    d = render(s, HOST)
    # common prefix "cali1a": the next characters a/b differ, so no leaf chain
    assert d.chain("felix-FROM-ENDPOINT")[:2] == (
        "--append felix-FROM-ENDPOINT --in-interface cali1aa --goto felix-from-1aa",
        "--append felix-FROM-ENDPOINT --in-interface cali1ab --goto felix-from-1ab")


# -- endpoint chains --------------------------------------------------------------------------
def test_endpoint_chains_mac_marks_profile_order_and_final_drop():
    e = ep("a1a1a1a1a1a1a1", "192.168.0.1", profiles=("net1", "extra"))
    d = render(snap(endpoints=[e], profiles=[default_profile("net1"), default_profile("extra")]), HOST)
    assert d.chain("felix-from-a1a1a1a1a1a") == (
        "--append felix-from-a1a1a1a1a1a --jump MARK --set-mark 0/0x1000000",
        '--append felix-from-a1a1a1a1a1a --match mac ! --mac-source ee:ee:ee:ee:ee:ee --jump DROP -m comment --comment "Incorrect source MAC"',
        "--append felix-from-a1a1a1a1a1a --jump felix-p-net1-o",
        '--append felix-from-a1a1a1a1a1a --match mark --mark 0x1000000/0x1000000 --match comment --comment "Profile accepted packet" --jump RETURN',
        "--append felix-from-a1a1a1a1a1a --jump felix-p-extra-o",
        '--append felix-from-a1a1a1a1a1a --match mark --mark 0x1000000/0x1000000 --match comment --comment "Profile accepted packet" --jump RETURN',
        '--append felix-from-a1a1a1a1a1a --jump DROP -m comment --comment "Packet did not match any profile (endpoint a1a1a1a1a1a1a1)"')
    to = d.chain("felix-to-a1a1a1a1a1a")
    assert to[0] == "--append felix-to-a1a1a1a1a1a --jump MARK --set-mark 0/0x1000000"
    assert "--append felix-to-a1a1a1a1a1a --jump felix-p-net1-i" == to[1]
    assert "--append felix-to-a1a1a1a1a1a --jump felix-p-extra-i" == to[3]
    assert not any("mac-source" in r for r in to)


def test_endpoint_without_profiles_drops_everything():
    d = render(snap(endpoints=[ep("a1a1a1a1a1a1a1", "192.168.0.1", profiles=())]), HOST)
    assert d.chain("felix-to-a1a1a1a1a1a") == (
        "--append felix-to-a1a1a1a1a1a --jump MARK --set-mark 0/0x1000000",
        '--append felix-to-a1a1a1a1a1a --jump DROP -m comment --comment "Packet did not match any profile (endpoint a1a1a1a1a1a1a1)"')
    assert not [c for c in d.chain_names() if c.startswith("felix-p-")]


def test_mark_bits_follow_iptables_mark_mask():
    d = render(snap(endpoints=[ep("a1a1a1a1a1a1a1", "192.168.0.1")], profiles=[default_profile("net1")],
                    config=(("IptablesMarkMask", "0x0000f000"),)), HOST)
    assert d.chain("felix-p-net1-o") == (
        "--append felix-p-net1-o --jump MARK --set-mark 0x1000/0x1000",
        "--append felix-p-net1-o --match mark --mark 0x1000/0x1000 --jump RETURN")


def test_inactive_and_invalid_local_endpoints_get_nothing():
    s = snap(endpoints=[ep("a1a1a1a1a1a1a1", "192.168.0.1", state="inactive"),
                        ep("b2b2b2b2b2b2b2", "192.168.0.2", name="eth9"),          # wrong prefix
                        ep("c3c3c3c3c3c3c3", "192.168.0.3", mac="zz:zz")],         # bad MAC
             profiles=[default_profile("net1")])
    d = render(s, HOST)
    assert d.endpoints == ()
    assert not [c for c in d.chain_names() if c.startswith(("felix-to-", "felix-from-", "felix-p-"))]
    assert len(d.warnings) == 2


# -- profile rules ----------------------------------------------------------------------------
def rules_of(rule, direction="inbound", extra_profiles=()):
    prof = model.Profile("p1", ("p1",), (rule,) if direction == "inbound" else (),
                         (rule,) if direction == "outbound" else ())
    d = render(snap(endpoints=[ep("a1a1a1a1a1a1a1", "192.168.0.1", profiles=("p1",))],
                    profiles=[prof, *extra_profiles]), HOST)
    return d.chain("felix-p-p1-i" if direction == "inbound" else "felix-p-p1-o"), d


def test_allow_sets_mark_then_returns_and_deny_drops():
    chain, _ = rules_of({"action": "allow", "protocol": "tcp", "dst_ports": [80, 443]})
    assert chain == (
        "--append felix-p-p1-i --protocol tcp --match multiport --destination-ports 80,443 --jump MARK --set-mark 0x1000000/0x1000000",
        "--append felix-p-p1-i --match mark --mark 0x1000000/0x1000000 --jump RETURN")
    chain, _ = rules_of({"action": "deny", "protocol": "tcp", "src_net": "10.0.0.0/8", "dst_ports": [22]})
    assert chain == ("--append felix-p-p1-i --protocol tcp --source 10.0.0.0/8 --match multiport --destination-ports 22 --jump DROP",)


def test_tags_negations_and_icmp():
    chain, d = rules_of({"protocol": "tcp", "src_tag": "web", "!dst_tag": "db", "!src_net": "11.0.0.0/8",
                         "src_ports": [1, "2:3"], "!protocol": "udp"})
    assert chain[0] == (
        "--append felix-p-p1-i --protocol tcp --match set --match-set felix-v4-web src"
        " --match multiport --source-ports 1,2:3 ! --protocol udp ! --source 11.0.0.0/8"
        " --match set ! --match-set felix-v4-db dst --jump MARK --set-mark 0x1000000/0x1000000")
    assert {s.name for s in d.ipsets} == {"felix-v4-web", "felix-v4-db"}
    chain, _ = rules_of({"protocol": "icmp", "!icmp_type": 7, "!icmp_code": 123})
    assert chain[0] == ("--append felix-p-p1-i --protocol icmp --match icmp ! --icmp-type 7/123"
                        " --jump MARK --set-mark 0x1000000/0x1000000")
    chain, _ = rules_of({"action": "deny", "protocol": "icmp", "icmp_type": 8}, "outbound")
    assert chain == ("--append felix-p-p1-o --protocol icmp --match icmp --icmp-type 8 --jump DROP",)


def test_multiport_split_is_a_cross_product_of_15_entry_chunks():
    assert split_ports([0, "2:3"] + list(range(4, 18))) == [
        ["0", "2:3"] + [str(p) for p in range(4, 16)], ["16", "17"]]
    chain, _ = rules_of({"protocol": "tcp", "src_ports": list(range(1, 17)),
                         "dst_ports": [f"{p}:{p + 1}" for p in range(100, 120, 2)]})
    marks = [r for r in chain if "--set-mark" in r]
    assert len(marks) == 4 and len(chain) == 8          # 2 source chunks x 2 destination chunks
    assert marks[0].startswith("--append felix-p-p1-i --protocol tcp --match multiport --source-ports "
                               "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15 --match multiport --destination-ports "
                               "100:101,102:103,104:105,106:107,108:109,110:111,112:113 ")
    assert "--source-ports 16 " in marks[3] and "--destination-ports 114:115,116:117,118:119 " in marks[3]
    chain, _ = rules_of({"protocol": "udp", "!dst_ports": list(range(1, 18))})
    assert chain[0] == ("--append felix-p-p1-i --protocol udp --match multiport ! --destination-ports "
                        "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15 --match multiport ! --destination-ports 16,17"
                        " --jump MARK --set-mark 0x1000000/0x1000000")


def test_log_and_log_prefix():
    chain, _ = rules_of({"action": "log", "log_prefix": "seen it!"})
    assert chain == ('--append felix-p-p1-i --jump LOG --log-prefix "seen_it_: " --log-level 5',)
    chain, _ = rules_of({"action": "deny", "log_prefix": "bye"})
    assert chain == ('--append felix-p-p1-i --jump LOG --log-prefix "bye: " --log-level 5',
                     "--append felix-p-p1-i --jump DROP")


def test_unrenderable_rule_becomes_one_drop():
    chain, _ = rules_of({"protocol": "icmp", "icmp_type": 255})
    assert chain == ('--append felix-p-p1-i --jump DROP -m comment --comment "ERROR failed to parse rules"',)
    chain, _ = rules_of({"protocol": "sctp", "dst_ports": [80]})       # valid, but no multiport
    assert chain == ('--append felix-p-p1-i --jump DROP -m comment --comment "ERROR failed to parse rules"',)
    chain, _ = rules_of({"src_selector": "a == 'b'"})
    assert chain == ('--append felix-p-p1-i --jump DROP -m comment --comment "ERROR failed to parse rules"',)


@pytest.mark.parametrize("bad", [
    {"action": "permit"}, {"protocol": "tcp", "dst_ports": ["80"]}, {"dst_ports": [80]},
    {"protocol": "tcp", "dst_ports": ["2000:1000"]}, {"src_tag": "no spaces"}, {"bogus": 1},
    {"protocol": "icmp", "icmp_code": 3}, {"src_net": "10.0.0.0/33"}, {"ip_version": 5}])
def test_invalid_rules_make_the_whole_profile_a_missing_chain(bad):
    prof = model.Profile("p1", ("p1",), ({"action": "allow"}, bad), ({"action": "allow"},))
    d = render(snap(endpoints=[ep("a1a1a1a1a1a1a1", "192.168.0.1", profiles=("p1",))], profiles=[prof]),
               HOST)
    for c in ("felix-p-p1-i", "felix-p-p1-o"):
        assert d.chain(c) == (f'--append {c} --jump DROP -m comment --comment "WARNING Missing chain"',)
    assert any("p1" in w for w in d.warnings)


def test_missing_profile_is_a_missing_chain():
    d = render(snap(endpoints=[ep("a1a1a1a1a1a1a1", "192.168.0.1", profiles=("ghost",))]), HOST)
    assert d.chain("felix-p-ghost-i") == (
        '--append felix-p-ghost-i --jump DROP -m comment --comment "WARNING Missing chain"',)


def test_ip_version_6_rules_and_v6_cidrs_skipped_in_v4():
    chain, _ = rules_of({"ip_version": 6, "protocol": "icmpv6"})
    assert chain == ()
    chain, _ = rules_of({"src_net": "fd00::/64"})
    assert chain[0] == "--append felix-p-p1-i --jump MARK --set-mark 0x1000000/0x1000000"


def test_drop_action_override():
    d = render(snap(endpoints=[ep("a1a1a1a1a1a1a1", "192.168.0.1", profiles=())],
                    config=(("DropActionOverride", "LOG-and-ACCEPT"),)), HOST)
    assert d.chain("felix-to-a1a1a1a1a1a")[1:] == (
        '--append felix-to-a1a1a1a1a1a --jump LOG --log-prefix "calico-drop: " --log-level 4 -m comment --comment "Packet did not match any profile (endpoint a1a1a1a1a1a1a1)"',
        '--append felix-to-a1a1a1a1a1a --jump ACCEPT -m comment --comment "!SECURITY DISABLED! DROP overridden to ACCEPT" -m comment --comment "Packet did not match any profile (endpoint a1a1a1a1a1a1a1)"')


# -- ipsets -----------------------------------------------------------------------------------
def test_tag_ipset_members_include_endpoints_on_every_host():
    d = render(seed(), HOST)
    assert [x.name for x in d.ipsets] == ["felix-v4-net1"]
    s = d.ipset("felix-v4-net1")
    assert s.set_type == "hash:ip" and s.maxelem == 1 << 20
    assert s.members == {"192.168.0.1", "192.168.0.2", "192.168.0.3"}
    assert s.tmp_name == "felix-tmp-v4-net1"


def test_ipsets_only_for_tags_referenced_by_profiles_in_local_use():
    web = model.Profile("web", ("web", "frontend"), ({"action": "allow", "src_tag": "db"},), ())
    db = model.Profile("db", ("db",), ({"action": "allow", "src_tag": "ops"},), ())
    s = snap(endpoints=[ep("a1a1a1a1a1a1a1", "192.168.0.1", profiles=("web",)),
                        ep("d4d4d4d4d4d4d4", "192.168.0.4", profiles=("db",), host="node2"),
                        ep("e5e5e5e5e5e5e5", "192.168.0.5", profiles=("db", "web"), host="node2",
                           state="inactive")],
             profiles=[web, db])
    d = render(s, HOST)
    # "db" is referenced by web (used locally); "ops" only by db (used on node2 only)
    assert [x.name for x in d.ipsets] == ["felix-v4-db"]
    assert d.ipset("felix-v4-db").members == {"192.168.0.4", "192.168.0.5"}


def test_tag_shared_by_several_profiles_and_long_tag_name():
    a = model.Profile("a", (NET1,), ({"action": "allow", "src_tag": NET1},), ())
    b = model.Profile("b", (NET1, "b"), (), ())
    s = snap(endpoints=[ep("a1a1a1a1a1a1a1", "192.168.0.1", profiles=("a",)),
                        ep("b2b2b2b2b2b2b2", "192.168.0.2", profiles=("b",), host="node2")],
             profiles=[a, b])
    d = render(s, HOST)
    assert d.ipset("felix-v4-_1bc237e3e202488").members == {"192.168.0.1", "192.168.0.2"}
    assert d.chain("felix-p-a-i")[0] == ("--append felix-p-a-i --match set --match-set "
                                         "felix-v4-_1bc237e3e202488 src --jump MARK --set-mark 0x1000000/0x1000000")


# -- per endpoint kernel state ----------------------------------------------------------------
def test_local_endpoint_routes_arp_and_sysctls():
    d = render(seed(), HOST)
    assert [e.iface for e in d.endpoints] == ["calia1a1a1a1a1a", "calib2b2b2b2b2b"]
    e = d.endpoints[0]
    assert e.mac == "ee:ee:ee:ee:ee:ee" and e.ipv4_addrs == ("192.168.0.1",)
    assert e.routes == ("192.168.0.1/32",)
    assert e.sysctls == (("net/ipv4/conf/calia1a1a1a1a1a/rp_filter", "1"),
                         ("net/ipv4/conf/calia1a1a1a1a1a/route_localnet", "1"),
                         ("net/ipv4/conf/calia1a1a1a1a1a/proxy_arp", "1"),
                         ("net/ipv4/neigh/calia1a1a1a1a1a/proxy_delay", "0"))
    assert d.global_sysctls == (("net/ipv4/conf/default/rp_filter", "1"),)


# -- nat, masquerade, IPIP --------------------------------------------------------------------
def test_nat_chains_without_masquerade():
    d = render(seed(), HOST)
    assert d.nat_chains == (
        ("felix-PREROUTING", ("--append felix-PREROUTING --jump felix-FIP-DNAT",)),
        ("felix-POSTROUTING", ("--append felix-POSTROUTING --jump felix-FIP-SNAT",)),
        ("felix-FIP-DNAT", ()), ("felix-FIP-SNAT", ()))
    assert d.nat_inserts == (("PREROUTING", "--jump felix-PREROUTING"),
                             ("POSTROUTING", "--jump felix-POSTROUTING"))
    assert d.tunnel is None
    assert "*nat\n:felix-PREROUTING - [0:0]\n" in d.nat_restore


def test_masquerade_pools():
    pools = [model.Pool("192.168.0.0/16", masquerade=True), model.Pool("10.10.0.0/24"),
             model.Pool("172.16.0.0/24", ipam=False)]
    d = render(snap(pools=pools), HOST)
    assert d.ipset("felix-all-ipam-pools").members == {"192.168.0.0/16", "10.10.0.0/24", "172.16.0.0/24"}
    assert d.ipset("felix-masq-ipam-pools").members == {"192.168.0.0/16"}
    assert d.ipset("felix-masq-ipam-pools").set_type == "hash:net"
    assert ("POSTROUTING", "--match set --match-set felix-masq-ipam-pools src --match set ! "
                           "--match-set felix-all-ipam-pools dst --jump MASQUERADE") in d.nat_inserts
    d = render(snap(pools=[model.Pool("192.168.0.0/16")]), HOST)
    assert not [s for s in d.ipsets if "pools" in s.name]
    assert len(d.nat_inserts) == 2


def test_ipip_enabled():
    d = render(snap(config=(("IpInIpEnabled", "true"),)), HOST)
    assert d.chain("felix-INPUT")[0] == (
        "--append felix-INPUT --protocol 4 --match set ! --match-set felix-calico-hosts-4 src --jump DROP")
    assert d.ipset("felix-calico-hosts-4").members == {"192.168.20.1", "192.168.20.2"}
    assert d.tunnel is not None and d.tunnel.mtu == 1440 and d.tunnel.address is None
    assert not any("tunl0" in spec for _, spec in d.nat_inserts)
    d = render(snap(config=(("IpInIpEnabled", "true"), ("IpInIpMtu", "1400")),
                    host_config=(("IpInIpTunnelAddr", "192.168.5.0"),)), HOST)
    assert d.tunnel.mtu == 1400 and d.tunnel.address == "192.168.5.0"
    assert ("POSTROUTING", "--out-interface tunl0 -m addrtype ! --src-type LOCAL --limit-iface-out "
                           "-m addrtype --src-type LOCAL -j MASQUERADE") in d.nat_inserts
    off = render(snap(config=(("IpInIpEnabled", "false"),)), HOST)
    assert off.tunnel is None and not any("hosts-4" in r for r in off.chain("felix-INPUT"))


def test_bad_config_values_fall_back_to_defaults_with_a_warning():
    d = render(snap(config=(("IpInIpMtu", "lots"), ("InterfacePrefix", "ca li"))), HOST)
    assert d.config.ipip_mtu == 1440 and d.config.iface_prefix == "cali"
    assert len(d.warnings) == 2


def test_render_is_deterministic_and_comparable():
    assert render(seed(), HOST) == render(seed(), HOST)
    assert render(seed(), HOST).filter_restore == render(seed(), HOST).filter_restore
    text = render(seed(), HOST).filter_restore
    assert text.startswith("*filter\n:felix-INPUT - [0:0]\n") and text.endswith("COMMIT\n")


def test_env_overrides_take_precedence():
    d = render(seed(), HOST, overrides={"DefaultEndpointToHostAction": "DROP"})
    assert d.config.default_endpoint_to_host_action == "DROP"
