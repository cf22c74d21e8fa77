"""Unit tests of lab.calico.rules: the calicoctl 0.x rule grammar, libcalico storage and rendering,
`rule update` input, and Felix 1.4.1b2 validation (spec §2, §3.5)."""
from __future__ import annotations

import json

import pytest

from lab.calico.rules import (IcmpType255, PortRangeCrash, RuleError, default_rules, parse_rule,
                              parse_rules_update, pprint, rule_show, rules_equal, rules_json,
                              to_stored_doc, to_stored_json_dict, validate_felix_rule)

from tests.tutorial_texts import MYSQLDB_RULE_JSON, SEED, TUTORIAL_SHOW, WEB_RULE_JSON

WEB_DOC = {
    "inbound_rules": [{"action": "allow", "src_tag": "web"},
                      {"action": "allow", "protocol": "tcp", "dst_ports": [80, 443]}],
    "outbound_rules": [{"action": "allow"}],
}


# ---------------------------------------------------------------------------------- grammar

@pytest.mark.parametrize("cmd, rule", [
    ("allow", {"action": "allow"}),
    ("deny", {"action": "deny"}),
    ("allow tcp", {"action": "allow", "protocol": "tcp"}),
    ("deny udp", {"action": "deny", "protocol": "udp"}),
    ("allow icmp", {"action": "allow", "protocol": "icmp"}),
    ("allow icmpv6", {"action": "allow", "protocol": "icmpv6"}),
    ("allow tcp to ports 80,443", {"action": "allow", "protocol": "tcp", "dst_ports": [80, 443]}),
    ("allow from tag web", {"action": "allow", "src_tag": "web"}),
    ("allow to tag web", {"action": "allow", "dst_tag": "web"}),
    ("allow from cidr 10.0.0.0/8", {"action": "allow", "src_net": "10.0.0.0/8"}),
    ("deny to cidr fd00::/8", {"action": "deny", "dst_net": "fd00::/8"}),
    ("allow from tag a cidr 10.0.0.0/8 to tag b cidr 192.168.0.0/16",
     {"action": "allow", "src_tag": "a", "src_net": "10.0.0.0/8", "dst_tag": "b", "dst_net": "192.168.0.0/16"}),
    ("allow from", {"action": "allow"}),                         # docopt: every sub-clause optional
    ("allow tcp from tag net2 to ports 3306",                    # spec §8 item 15
     {"action": "allow", "protocol": "tcp", "src_tag": "net2", "dst_ports": [3306]}),
    ("allow udp from ports 53 tag dns cidr 10.1.0.0/16 to ports 1024:65535 tag x cidr 10.2.0.0/16",
     {"action": "allow", "protocol": "udp", "src_ports": [53], "src_tag": "dns", "src_net": "10.1.0.0/16",
      "dst_ports": ["1024:65535"], "dst_tag": "x", "dst_net": "10.2.0.0/16"}),
    ("allow tcp to ports 1000-2000", {"action": "allow", "protocol": "tcp", "dst_ports": ["1000:2000"]}),
    ("allow tcp to ports 22,1000:2000,0,65535",
     {"action": "allow", "protocol": "tcp", "dst_ports": [22, "1000:2000", 0, 65535]}),
    ("allow tcp from ports 1234", {"action": "allow", "protocol": "tcp", "src_ports": [1234]}),
    ("allow icmp type 8", {"action": "allow", "protocol": "icmp", "icmp_type": 8}),
    ("deny icmp type 8 code 0 from cidr 10.0.0.0/8",
     {"action": "deny", "protocol": "icmp", "icmp_type": 8, "icmp_code": 0, "src_net": "10.0.0.0/8"}),
    ("allow icmpv6 type 128 to cidr fd00::/64",
     {"action": "allow", "protocol": "icmpv6", "icmp_type": 128, "dst_net": "fd00::/64"}),
    ("allow icmp from tag t to tag u", {"action": "allow", "protocol": "icmp", "src_tag": "t", "dst_tag": "u"}),
    ("allow from cidr 10.0.0.5", {"action": "allow", "src_net": "10.0.0.5/32"}),   # netaddr: bare IP = /32
    ("allow from cidr 10.1.2.3/8", {"action": "allow", "src_net": "10.1.2.3/8"}),  # host bits kept
    ("allow from tag My_tag-1.x", {"action": "allow", "src_tag": "My_tag-1.x"}),
], ids=lambda v: v if isinstance(v, str) else None)
def test_parse_rule(cmd, rule):
    assert parse_rule(cmd.split()) == rule


def test_parse_rule_key_order_matches_rule_json():
    assert list(parse_rule("allow tcp from tag a to ports 1".split())) == ["action", "protocol", "src_tag",
                                                                         "dst_ports"]


@pytest.mark.parametrize("cmd, token, why", [
    ("", "nothing", "expected 'allow' or 'deny'"),
    ("permit", "'permit'", "expected 'allow' or 'deny'"),
    ("tcp allow", "'tcp'", "expected 'allow' or 'deny'"),
    ("allow allow", "'allow'", "action"),
    ("allow from ports 80", "'ports'", "only allowed after tcp or udp"),
    ("allow icmp to ports 80", "'ports'", "only allowed after tcp or udp"),
    ("allow icmpv6 from ports 1", "'ports'", "only allowed after tcp or udp"),
    ("allow tcp type 8", "'type'", "only allowed right after icmp or icmpv6"),
    ("allow type 8", "'type'", "only allowed right after icmp or icmpv6"),
    ("allow udp code 0", "'code'", "only allowed right after icmp or icmpv6"),
    ("allow icmp code 0", "'code'", "code requires a preceding type"),
    ("allow icmp from tag a type 8", "'type'", "before from/to"),
    ("allow icmp type 8 type 9", "'type'", "before from/to"),
    ("allow from tag a tcp", "'tcp'", "protocol must come right after"),
    ("allow tcp udp", "'udp'", "protocol must come right after"),
    ("allow to tag a from tag b", "'from'", "from must come before to"),
    ("allow from tag a from tag b", "'from'", "from must come before to"),
    ("allow to tag a to tag b", "'to'", "to can only be given once"),
    ("allow tcp from tag a ports 80", "'ports'", "order is ports, tag, cidr"),
    ("allow from cidr 10.0.0.0/8 tag a", "'tag'", "order is ports, tag, cidr"),
    ("allow icmpv6 type 128 to cidr fd00::/64 tag v6", "'tag' (token 8)", "order is ports, tag, cidr"),
    ("allow from tag a tag b", "'tag'", "order is ports, tag, cidr"),
    ("allow tcp to ports 80 ports 81", "'ports'", "order is ports, tag, cidr"),
    ("allow tag web", "'tag'", "must follow from or to"),
    ("allow cidr 10.0.0.0/8", "'cidr'", "must follow from or to"),
    ("allow from tag web please", "'please'", "not part of the rule grammar"),
    ("allow from 192.168.0.0/16", "'192.168.0.0/16'", "not part of"),        # calicoctl#1196
])
def test_parse_rule_usage_errors(cmd, token, why):
    with pytest.raises(RuleError) as err:
        parse_rule(cmd.split())
    msg = str(err.value)
    assert msg.startswith("Invalid rule: ") and token in msg and why in msg


@pytest.mark.parametrize("cmd", ["allow from tag", "allow tcp to ports", "allow icmp type", "allow icmp type 8 code",
                                 "allow from cidr", "allow icmp type -1"])
def test_parse_rule_missing_value(cmd):
    with pytest.raises(RuleError, match=r"^Invalid rule: missing value after '\w+'$"):
        parse_rule(cmd.split())


@pytest.mark.parametrize("cmd, message", [
    ("allow from tag we/b", "Tags names can only contain numbers, letters, dots, dashes and underscores."),
    ("allow to tag a:b", "Tags names can only contain numbers, letters, dots, dashes and underscores."),
    ("allow from tag é", "Tags names can only contain numbers, letters, dots, dashes and underscores."),
    ("allow from cidr 10.0.0.0/33", "Invalid CIDR specified."),
    ("allow to cidr banana", "Invalid CIDR specified."),
    ("allow icmp type 255", "Invalid ICMP type or ICMP code specified."),
    ("allow icmp type 8 code 256", "Invalid ICMP type or ICMP code specified."),
    ("allow icmpv6 type x", "Invalid ICMP type or ICMP code specified."),
    ("allow tcp to ports 65536", "Invalid SRCPORTS or DSTPORTS specified."),
    ("allow tcp to ports 80,", "Invalid SRCPORTS or DSTPORTS specified."),
    ("allow tcp to ports 80;443", "Invalid SRCPORTS or DSTPORTS specified."),
    ("allow tcp from ports 2000:1000", "Invalid SRCPORTS or DSTPORTS specified."),
    ("allow tcp from ports 1000:1000", "Invalid SRCPORTS or DSTPORTS specified."),
    ("allow tcp from ports 1:2:3", "Invalid SRCPORTS or DSTPORTS specified."),
    ("allow icmp from cidr fd00::/8", "Invalid or unmatching IP versions for SRCCIDR/DSTCIDR."),
    ("allow icmpv6 to cidr 10.0.0.0/8", "Invalid or unmatching IP versions for SRCCIDR/DSTCIDR."),
    ("allow from cidr 10.0.0.0/8 to cidr fd00::/8", "Invalid or unmatching IP versions for SRCCIDR/DSTCIDR."),
    ("allow tcp from cidr 10.0.0.0/8 to cidr fd00::/8", "Invalid or unmatching IP versions for SRCCIDR/DSTCIDR."),
])
def test_parse_rule_value_errors(cmd, message):
    with pytest.raises(RuleError) as err:
        parse_rule(cmd.split())
    assert str(err.value) == message


def test_parse_rule_reports_every_problem_in_calicoctl_order():
    with pytest.raises(RuleError) as err:
        parse_rule("allow tcp from ports 99999 tag b@d cidr 10.0.0.0/99".split())
    assert str(err.value).splitlines() == [
        "Tags names can only contain numbers, letters, dots, dashes and underscores.",
        "Invalid CIDR specified.",
        "Invalid SRCPORTS or DSTPORTS specified.",
    ]


def test_rule_error_is_a_value_error():
    assert issubclass(RuleError, ValueError) and issubclass(PortRangeCrash, ValueError)


# ------------------------------------------------------------------------- storage (§2.1)

@pytest.mark.parametrize("ports, bad", [(["1000:2000"], "1000:2000"), ([80, "1:3", 443], "1:3")])
def test_port_range_crashes_like_libcalico(ports, bad):
    rule = {"action": "allow", "protocol": "tcp", "dst_ports": ports}
    with pytest.raises(PortRangeCrash) as err:
        to_stored_json_dict(rule)
    assert str(err.value) == f"invalid literal for int() with base 10: '{bad}'"


def test_cli_range_parses_then_crashes_when_stored():
    rule = parse_rule("allow tcp to ports 1000-2000".split())
    assert rule["dst_ports"] == ["1000:2000"]
    with pytest.raises(PortRangeCrash, match=r"^invalid literal for int\(\) with base 10: '1000:2000'$"):
        to_stored_json_dict(rule)


def test_stored_json_dict_casts_ports_and_keeps_the_rest():
    rule = {"action": "allow", "protocol": "tcp", "src_ports": ["80"], "dst_ports": [443],
            "src_net": "10.0.0.0/8", "src_tag": "web"}
    stored = to_stored_json_dict(rule)
    assert stored == {**rule, "src_ports": [80]}
    assert rule["src_ports"] == ["80"]                  # input untouched
    assert to_stored_json_dict({"action": "allow"}) == {"action": "allow"}


def test_stored_doc():
    assert to_stored_doc({"inbound_rules": [{"action": "allow", "dst_ports": ["22"], "protocol": "tcp"}]}) == {
        "inbound_rules": [{"action": "allow", "protocol": "tcp", "dst_ports": [22]}], "outbound_rules": []}


def test_default_rules():
    assert default_rules("net1") == {"inbound_rules": [{"action": "allow", "src_tag": "net1"}],
                                     "outbound_rules": [{"action": "allow"}]}
    assert default_rules("a") is not default_rules("a")


# ----------------------------------------------------------------------- rendering (§2.5)

@pytest.mark.parametrize("text", [
    "allow from tag WEB",
    "allow",
    "deny",
    "allow tcp to ports 80,443",
    "allow icmp type 8",
    "allow icmp type 8 code 0",
    "deny tcp from cidr 10.0.0.0/8 to ports 22",
    "allow tcp from tag net2 to ports 3306",
    "allow udp from ports 53 tag a cidr 10.0.0.0/8 to ports 1:2,5 tag b cidr 10.1.0.0/16",
    "deny icmpv6 type 128 to cidr fd00::/64",
    "allow to tag db",
])
def test_pprint_round_trip(text):
    assert pprint(parse_rule(text.split())) == text


@pytest.mark.parametrize("rule, text", [
    ({"action": "allow", "src_tag": "WEB"}, "allow from tag WEB"),
    ({"action": "allow"}, "allow"),
    ({"action": "allow", "protocol": "tcp", "dst_ports": [80, 443]}, "allow tcp to ports 80,443"),
    ({"action": "allow", "protocol": "icmp", "icmp_type": 8}, "allow icmp type 8"),
    ({"action": "deny", "protocol": "tcp", "src_net": "10.0.0.0/8", "dst_ports": [22]},
     "deny tcp from cidr 10.0.0.0/8 to ports 22"),
    # key order in the dict does not matter; token order is fixed
    ({"dst_ports": [3306], "src_tag": "net2", "protocol": "tcp", "action": "allow"},
     "allow tcp from tag net2 to ports 3306"),
    ({"src_net": "10.0.0.0/8", "src_tag": "t", "src_ports": ["1000:2000", 5], "action": "deny",
      "protocol": "udp"}, "deny udp from ports 1000:2000,5 tag t cidr 10.0.0.0/8"),
    ({"protocol": "tcp"}, "allow tcp"),                     # Felix default action
    ({"action": "next-tier"}, "next-tier"),
])
def test_pprint_spec_examples(rule, text):
    assert pprint(rule) == text


def test_pprint_maps_network_ids_to_names():
    net2 = "a" * 64
    rule = {"action": "allow", "protocol": "tcp", "src_tag": net2, "dst_tag": "b" * 64, "dst_ports": [3306]}
    names = {net2: "net2"}
    assert pprint(rule, lambda t: names.get(t, t)) == f"allow tcp from tag net2 to ports 3306 tag {'b' * 64}"


def test_rule_show_tutorial():
    assert rule_show(WEB_DOC) == TUTORIAL_SHOW
    doc = parse_rules_update(WEB_RULE_JSON)
    assert rule_show(doc) == TUTORIAL_SHOW


def test_rule_show_tutorial_built_with_rule_add():
    doc = default_rules("web")
    doc["inbound_rules"].append(parse_rule("allow tcp to ports 80,443".split()))
    assert rule_show(doc) == TUTORIAL_SHOW


@pytest.mark.skipif(not SEED.exists(), reason="seed tutorial not available")
def test_rule_show_text_is_in_the_seed():
    assert TUTORIAL_SHOW in SEED.read_text(encoding="utf-8")


def test_rule_show_default_profile_with_network_name():
    net_id = "f" * 64
    text = rule_show(default_rules(net_id), {net_id: "databases"}.get)
    assert text == "Inbound rules:\n   1 allow from tag databases\nOutbound rules:\n   1 allow\n"


def test_rule_show_spec_item_15_and_wide_indexes():
    doc = default_rules("N1")
    doc["inbound_rules"].append(parse_rule("allow tcp from tag net2 to ports 3306".split()))
    assert rule_show(doc).splitlines()[2] == "   2 allow tcp from tag net2 to ports 3306"
    many = {"inbound_rules": [{"action": "deny"}] * 1000}
    lines = rule_show(many).splitlines()
    assert lines[1] == "   1 deny" and lines[1000] == " 1000 deny" and lines[-1] == "Outbound rules:"


def test_rule_show_empty_and_missing_lists():
    assert rule_show({}) == "Inbound rules:\nOutbound rules:\n"


def test_rules_json_matches_tutorial_file():
    assert rules_json(WEB_DOC) == WEB_RULE_JSON + "\n"
    assert rules_json(WEB_DOC).endswith("}\n\n")
    assert json.loads(rules_json(WEB_DOC)) == WEB_DOC


def test_rules_json_maps_names_and_crashes_on_ranges():
    net_id = "c" * 64
    out = json.loads(rules_json(default_rules(net_id), {net_id: "web"}.get))
    assert out["inbound_rules"] == [{"action": "allow", "src_tag": "web"}]
    with pytest.raises(PortRangeCrash):
        rules_json({"inbound_rules": [{"action": "allow", "protocol": "tcp", "dst_ports": ["1:2"]}]})


# ----------------------------------------------------------------- rule update input (§2.1)

def test_update_tutorial_web_rule():
    assert parse_rules_update(WEB_RULE_JSON) == WEB_DOC


def test_update_tutorial_mysqldb_rule_with_tab():
    assert "\t" in MYSQLDB_RULE_JSON
    doc = parse_rules_update(MYSQLDB_RULE_JSON)
    assert doc == {
        "inbound_rules": [{"action": "allow", "src_tag": "mysqldb"},
                          {"action": "allow", "protocol": "tcp", "src_tag": "db-users", "dst_ports": [3306]}],
        "outbound_rules": [{"action": "allow"}],
    }
    assert rule_show(doc).splitlines()[2] == "   2 allow tcp from tag db-users to ports 3306"


@pytest.mark.skipif(not SEED.exists(), reason="seed tutorial not available")
def test_update_files_are_the_seeds():
    seed = SEED.read_text(encoding="utf-8")
    assert WEB_RULE_JSON in seed and MYSQLDB_RULE_JSON.rstrip("\n") in seed


@pytest.mark.parametrize("text, doc", [
    ('{"inbound_rules": [{"action": "deny"}]}', {"inbound_rules": [{"action": "deny"}], "outbound_rules": []}),
    ('{"id": "web", "outbound_rules": []}', {"inbound_rules": [], "outbound_rules": []}),
    ('{"inbound_rules": null, "extra": 1}', {"inbound_rules": [], "outbound_rules": []}),
    ('{}', {"inbound_rules": [], "outbound_rules": []}),
    ('{"inbound_rules": [{"action": "next-tier", "src_selector": "a == \'b\'"}]}',
     {"inbound_rules": [{"action": "next-tier", "src_selector": "a == 'b'"}], "outbound_rules": []}),
    ('{"inbound_rules": [{"protocol": "icmpv6", "icmp_type": 128, "icmp_code": 0, "src_net": "fd00::1/64"}]}',
     {"inbound_rules": [{"protocol": "icmpv6", "icmp_type": 128, "icmp_code": 0, "src_net": "fd00::1/64"}],
      "outbound_rules": []}),
    ('{"inbound_rules": [{"protocol": "udp", "dst_ports": ["1000:2000", "53", 0, 65535], "dst_net": "10.0.0.1"}]}',
     {"inbound_rules": [{"protocol": "udp", "dst_ports": ["1000:2000", "53", 0, 65535], "dst_net": "10.0.0.1/32"}],
      "outbound_rules": []}),
])
def test_update_accepts(text, doc):
    assert parse_rules_update(text) == doc


@pytest.mark.parametrize("rule, message", [
    ({"action": "allow", "log_prefix": "x"}, "Key log_prefix is not allowed on Rule."),
    ({"!src_tag": "web"}, "Key !src_tag is not allowed on Rule."),
    ({"ip_version": 4}, "Key ip_version is not allowed on Rule."),
    ({"not_src_tag": "a"}, "Key not_src_tag is not allowed on Rule."),
    ({"action": "log"}, "'log' is not allowed for key 'action'"),
    ({"action": "accept"}, "'accept' is not allowed for key 'action'"),
    ({"protocol": "sctp"}, "'sctp' is not allowed for key 'protocol'"),
    ({"protocol": 6}, "'6' is not allowed for key 'protocol'"),
    ({"src_tag": "a b"}, "'a b' is not allowed for key 'src_tag'"),
    ({"dst_tag": 5}, "'5' is not allowed for key 'dst_tag'"),
    ({"protocol": "tcp", "dst_ports": [70000]}, "'[70000]' is not allowed for key 'dst_ports'"),
    ({"protocol": "tcp", "dst_ports": ["2:1"]}, "'['2:1']' is not allowed for key 'dst_ports'"),
    ({"protocol": "tcp", "dst_ports": "80"}, "'80' is not allowed for key 'dst_ports'"),
    ({"protocol": "tcp", "src_ports": ["1-2"]}, "'['1-2']' is not allowed for key 'src_ports'"),
    ({"protocol": "icmp", "icmp_type": 255}, "'255' is not allowed for key 'icmp_type'"),
    ({"protocol": "icmp", "icmp_type": 8, "icmp_code": -1}, "'-1' is not allowed for key 'icmp_code'"),
    ({"src_net": "10.0.0.0/40"}, "invalid IPNetwork 10.0.0.0/40"),
    ({"dst_net": "nope"}, "invalid IPNetwork nope"),
])
def test_update_rejects_rule(rule, message):
    text = json.dumps({"inbound_rules": [{"action": "allow"}], "outbound_rules": [rule]})
    with pytest.raises(RuleError) as err:
        parse_rules_update(text)
    assert str(err.value) == message


@pytest.mark.parametrize("text, fragment", [
    ("", "No JSON object could be decoded"),
    ("{'inbound_rules': []}", "No JSON object could be decoded"),
    ("[]", "must be an object"),
    ('{"inbound_rules": {}}', "inbound_rules must be a list"),
    ('{"outbound_rules": ["allow"]}', "Rule must be a JSON object"),
])
def test_update_rejects_document(text, fragment):
    with pytest.raises(RuleError, match=fragment):
        parse_rules_update(text)


def test_update_with_range_is_accepted_but_storing_crashes():
    doc = parse_rules_update('{"inbound_rules": [{"protocol": "tcp", "dst_ports": ["1000:2000"]}]}')
    with pytest.raises(PortRangeCrash):
        to_stored_doc(doc)


# ------------------------------------------------------------------------ Felix (§2.1)

@pytest.mark.parametrize("rule", [
    {},
    {"action": "allow"},
    {"action": "log", "log_prefix": "anything goes: it is sanitised"},
    {"action": "next-tier"},
    {"action": "deny", "protocol": "tcp", "dst_ports": [0, 80, "1000:2000", 65535]},
    {"protocol": "udplite", "src_ports": [5]},
    {"protocol": "sctp", "!dst_ports": [5]},
    {"protocol": 6, "dst_ports": [22]},
    {"protocol": "17", "dst_ports": [53]},
    {"protocol": 255},
    {"protocol": "47"},
    {"!protocol": "tcp"},
    {"protocol": "icmp", "icmp_type": 8, "icmp_code": 0},
    {"protocol": "icmp", "!icmp_type": 8},
    {"protocol": "icmpv6", "icmp_type": 128, "ip_version": 6},
    {"src_net": "10.0.0.0/8", "!dst_net": "10.1.0.0/16", "ip_version": 4},
    {"src_tag": "web", "!dst_tag": "a-b_c.d", "src_selector": "a == 'b'", "!dst_selector": "has(x)"},
    {"action": "allow", "src_tag": None},                 # None fields are dropped
    {"ip_version": 6, "dst_net": "fd00::/8"},
])
def test_felix_accepts(rule):
    assert validate_felix_rule(rule) is None


@pytest.mark.parametrize("rule, fragment", [
    ({"action": "accept"}, "Invalid action"),
    ({"ip_version": 5}, "Invalid ip_version"),
    ({"protocol": "dccp"}, "Invalid protocol dccp"),
    ({"protocol": 0}, "Invalid protocol 0"),
    ({"protocol": 256}, "Invalid protocol 256"),
    ({"!protocol": "gre"}, "Invalid !protocol gre"),
    ({"protocol": "icmpv6", "ip_version": 4}, "Using icmpv6 with IPv4"),
    ({"protocol": "icmp", "ip_version": 6}, "Using icmp with IPv6"),
    ({"protocol": "tcp", "dst_ports": ["80"]}, "Invalid port 80 (range unparseable)"),
    ({"protocol": "tcp", "dst_ports": ["2000:1000"]}, "(range invalid)"),
    ({"protocol": "tcp", "dst_ports": ["1000:1000"]}, "(range invalid)"),
    ({"protocol": "tcp", "dst_ports": ["a:b"]}, "(range invalid)"),
    ({"protocol": "tcp", "dst_ports": [65536]}, "(integer out of range)"),
    ({"protocol": "tcp", "dst_ports": [1.5]}, "(neither integer nor string)"),
    ({"protocol": "tcp", "dst_ports": 80}, "Expected ports to be a list"),
    ({"dst_ports": [80]}, "dst_ports is not allowed for protocol None"),
    ({"protocol": "icmp", "src_ports": [80]}, "src_ports is not allowed for protocol icmp"),
    ({"!protocol": "tcp", "!dst_ports": [80]}, "!dst_ports is not allowed for protocol None"),
    ({"protocol": "icmp", "icmp_type": "8"}, "ICMP type is not an integer"),
    ({"protocol": "icmp", "icmp_type": 256}, "ICMP type is out of range"),
    ({"protocol": "icmp", "icmp_type": 8, "icmp_code": 256}, "ICMP code is out of range"),
    ({"protocol": "icmp", "icmp_code": 0}, "ICMP code specified without ICMP type"),
    ({"protocol": "icmp", "!icmp_code": 0}, "ICMP code specified without ICMP type"),
    ({"icmp_type": 8}, "need protocol icmp or icmpv6"),
    ({"src_tag": "bad tag"}, "Invalid src_tag"),
    ({"!dst_tag": ""}, "Invalid !dst_tag"),
    ({"src_selector": 5}, "Invalid src_selector"),
    ({"src_net": "10.0.0.0/33"}, "Invalid CIDR"),
    ({"dst_net": "fd00::/8", "ip_version": 4}, "Invalid CIDR (version 4)"),
    ({"log_prefix": 5}, "Log prefix should be a string"),
    ({"not_src_tag": "a"}, "unknown keys: ['not_src_tag']"),
    ({"action": "allow", "id": "x"}, "unknown keys: ['id']"),
])
def test_felix_rejects(rule, fragment):
    with pytest.raises(RuleError) as err:
        validate_felix_rule(rule)
    assert fragment in str(err.value)
    assert not isinstance(err.value, IcmpType255)


def test_felix_icmp_type_255_is_its_own_case():
    with pytest.raises(IcmpType255):
        validate_felix_rule({"protocol": "icmp", "icmp_type": 255})
    assert issubclass(IcmpType255, RuleError)
    # Another problem besides type 255 makes it an ordinary invalid rule.
    with pytest.raises(RuleError) as err:
        validate_felix_rule({"protocol": "icmp", "icmp_type": 255, "bogus": 1})
    assert not isinstance(err.value, IcmpType255)


def test_felix_does_not_modify_input():
    rule = {"action": "allow", "src_tag": None, "protocol": 6, "dst_ports": [1]}
    validate_felix_rule(rule)
    assert rule == {"action": "allow", "src_tag": None, "protocol": 6, "dst_ports": [1]}


@pytest.mark.parametrize("cmd", [
    "allow", "deny tcp from ports 1,2 tag a cidr 10.0.0.0/8 to ports 3 tag b cidr 10.1.0.0/16",
    "allow icmp type 8 code 0 from cidr 10.0.0.0/8", "allow icmpv6 type 1 to cidr fd00::/8",
    "allow udp to ports 53", "allow from tag web",
])
def test_everything_calicoctl_stores_felix_accepts(cmd):
    validate_felix_rule(to_stored_json_dict(parse_rule(cmd.split())))


def test_tutorial_rules_are_valid_for_felix():
    for doc in (parse_rules_update(WEB_RULE_JSON), parse_rules_update(MYSQLDB_RULE_JSON), default_rules("x")):
        for rule in doc["inbound_rules"] + doc["outbound_rules"]:
            validate_felix_rule(to_stored_json_dict(rule))


# ------------------------------------------------------------------------ equality (§3.5)

@pytest.mark.parametrize("a, b, equal", [
    ({"action": "allow", "src_tag": "web"}, {"src_tag": "web", "action": "allow"}, True),
    ({"src_tag": "web"}, {"action": "allow", "src_tag": "web"}, True),            # default action
    ({"action": "deny", "src_tag": "web"}, {"action": "allow", "src_tag": "web"}, False),
    ({"action": "allow", "protocol": "tcp", "dst_ports": [80, 443]},
     {"action": "allow", "protocol": "tcp", "dst_ports": ["80", "443"]}, True),
    ({"action": "allow", "protocol": "tcp", "dst_ports": [80, 443]},
     {"action": "allow", "protocol": "tcp", "dst_ports": [443, 80]}, False),        # list order counts
    ({"action": "allow", "protocol": "tcp", "dst_ports": ["1000-2000"]},
     {"action": "allow", "protocol": "tcp", "dst_ports": ["1000:2000"]}, True),
    ({"action": "allow", "src_net": "10.1.2.3/8"}, {"action": "allow", "src_net": "10.0.0.0/8"}, True),
    ({"action": "allow", "src_net": "10.0.0.0/8"}, {"action": "allow", "src_net": "10.0.0.0/16"}, False),
    ({"action": "allow", "protocol": "icmp", "icmp_type": 8}, {"action": "allow", "protocol": "icmp"}, False),
    ({"action": "allow", "src_tag": None}, {"action": "allow"}, True),
    ({"action": "allow", "src_tag": "a"}, {"action": "allow", "dst_tag": "a"}, False),
])
def test_rules_equal(a, b, equal):
    assert rules_equal(a, b) is equal
    assert rules_equal(b, a) is equal


def test_rule_already_present_and_remove_by_spec():
    """`rule add` of the default rule is "already present"; tutorial's `rule remove` finds its rule."""
    doc = default_rules("mysqldb")
    assert any(rules_equal(parse_rule("allow from tag mysqldb".split()), r) for r in doc["inbound_rules"])
    stored = parse_rules_update(json.dumps({"inbound_rules": [
        {"action": "allow", "dst_ports": [3306], "protocol": "tcp", "src_tag": "app"}]}))
    wanted = parse_rule("allow tcp from tag app to ports 3306".split())
    assert rules_equal(wanted, stored["inbound_rules"][0])
