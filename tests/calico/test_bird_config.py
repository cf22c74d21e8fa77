"""Rendered BIRD configs (spec §6.2–§6.4, §6.6): structure, and BIRD 1.6 accepts them."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

import pytest

from lab.calico import model
from lab.calico.bird import config
from lab.calico.bird.config import render_node_config, render_rr_config

BIRD = shutil.which("bird") or "/usr/sbin/bird"
needs_bird = pytest.mark.skipif(not os.path.exists(BIRD), reason="BIRD 1.6 is not installed")

N1, N2, N3 = "10.0.0.1", "10.0.0.2", "10.0.0.3"
# with `passive on`, the retry timers that keep the active side from waiting 120 s (block text)
TIMERS = "connect delay time 2; connect retry time 5; error wait time 5,30;"


def host(name, ip, **kw):
    return model.Host(hostname=name, bird_ip=ip, ip_addr_v4=ip, **kw)


def snap(**kw) -> model.Snapshot:
    base = dict(hosts=(host("node1", N1), host("node2", N2)),
                pools=(model.Pool("192.168.0.0/16"),),
                affinities=(("node1", "192.168.0.0/26"), ("node2", "192.168.0.64/26")))
    base.update(kw)
    return model.Snapshot(**base)


def bird_parse(tmp_path, text: str) -> None:
    path = tmp_path / f"bird-{len(list(tmp_path.iterdir()))}.cfg"
    path.write_text(text)
    res = subprocess.run([BIRD, "-p", "-c", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, f"bird -p rejected the config: {res.stderr}\n{text}"


def code(text: str) -> str:
    """The config without comments, whitespace collapsed to one space per run."""
    return re.sub(r"\s+", " ", re.sub(r"#[^\n]*", "", text)).strip()


def block(text: str, header: str) -> str:
    """Body of the first `header { … }` (no nested braces at the top level of bodies we test,
    except filters/functions, for which the whole balanced body is returned)."""
    c = code(text)
    start = c.index(header + " {") + len(header) + 2
    depth, i = 1, start
    while depth:
        depth += {"{": 1, "}": -1}.get(c[i], 0)
        i += 1
    return c[start:i - 1].strip()


def bgp_protocols(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2).strip() for m in
            re.finditer(r"protocol bgp (\w+) from bgp_template \{([^}]*)\}", code(text))}


@dataclass(frozen=True)
class LoggingHost(model.Host):
    loglevel: str | None = None


# -- calico/node ------------------------------------------------------------------------------

@needs_bird
def test_two_node_mesh(tmp_path):
    text = render_node_config(snap(), "node1", N1)
    bird_parse(tmp_path, text)
    c = code(text)
    assert c.startswith("protocol static { route 192.168.0.0/26 blackhole; }")
    assert f"router id {N1};" in c
    assert block(text, "protocol kernel") == ("learn; persist; scan time 2; import all; "
                                              "export filter calico_ipip; graceful restart;")
    assert block(text, "protocol device") == "debug { states }; scan time 2;"
    assert block(text, "protocol direct") == 'debug { states }; interface -"cali*", "*";'
    assert block(text, "function calico_aggr ()") == (
        "if ( net = 192.168.0.0/26 ) then { accept; } if ( net ~ 192.168.0.0/26 ) then { reject; }")
    assert block(text, "filter calico_pools") == (
        "calico_aggr(); if ( net ~ 192.168.0.0/16 ) then { accept; } reject;")
    assert block(text, "filter calico_ipip") == "accept;"
    assert block(text, "template bgp bgp_template") == (
        'debug { states }; description "Connection to BGP peer"; local as 64511; multihop; '
        "gateway recursive; import all; export filter calico_pools; next hop self; "
        f"source address {N1}; add paths on; graceful restart; {TIMERS}")
    assert bgp_protocols(text) == {"Mesh_10_0_0_2": f"neighbor {N2} as 64511;"}
    assert f"# Skipping ourselves ({N1})" in text
    assert "# No global peers configured." in text and "# No node-specific peers configured." in text
    # only our own block is a blackhole; the peer's block is not mentioned at all
    assert "192.168.0.64" not in text
    # include order of the 2016 bird.cfg: aggr, then ipam, then the main file
    assert c.index("function calico_aggr") < c.index("filter calico_pools") < c.index("router id")


@needs_bird
def test_collision_avoidance_only_on_the_higher_ip(tmp_path):
    s = snap(hosts=(host("node1", N1), host("node2", N2), host("node3", N3)))
    low, mid = render_node_config(s, "node1", N1), render_node_config(s, "node2", N2)
    for t in (low, mid):
        bird_parse(tmp_path, t)
    assert "passive on" not in low
    assert bgp_protocols(mid) == {"Mesh_10_0_0_1": f"neighbor {N1} as 64511; passive on;",
                                  "Mesh_10_0_0_3": f"neighbor {N3} as 64511;"}
    released = render_node_config(s, "node2", N2, passive=False)
    assert "passive" not in released and "connect retry" not in released
    assert bgp_protocols(released)["Mesh_10_0_0_1"] == f"neighbor {N1} as 64511;"


@needs_bird
def test_mesh_off_with_global_peers(tmp_path):
    s = snap(node_mesh=False, global_peers_v4=(model.Peer("10.0.0.9", "64512"),
                                               model.Peer(N1, "64511")))
    text = render_node_config(s, "node1", N1)
    bird_parse(tmp_path, text)
    assert "# Node-to-node mesh disabled" in text
    # a global peer equal to our own IP still gets its (forever Idle) session, as in 2016
    assert bgp_protocols(text) == {"Global_10_0_0_1": f"neighbor {N1} as 64511;",
                                   "Global_10_0_0_9": "neighbor 10.0.0.9 as 64512;"}


@needs_bird
def test_global_peer_that_is_also_a_mesh_member_is_not_deduplicated(tmp_path):
    text = render_node_config(snap(global_peers_v4=(model.Peer(N2, "64511"),)), "node1", N1)
    bird_parse(tmp_path, text)
    assert set(bgp_protocols(text)) == {"Mesh_10_0_0_2", "Global_10_0_0_2"}


@needs_bird
def test_node_specific_peer_only_on_its_node(tmp_path):
    s = snap(hosts=(host("node1", N1), host("node2", N2, peers_v4=(model.Peer("10.0.0.8", "65000"),))))
    one, two = render_node_config(s, "node1", N1), render_node_config(s, "node2", N2)
    bird_parse(tmp_path, one)
    bird_parse(tmp_path, two)
    assert "Node_" not in code(one)
    assert bgp_protocols(two)["Node_10_0_0_8"] == "neighbor 10.0.0.8 as 65000;"
    assert "# For peer /host/node2/peer_v4/10.0.0.8" in two


@needs_bird
def test_per_node_as(tmp_path):
    s = snap(as_num="64511", hosts=(host("node1", N1, as_num="65001"), host("node2", N2),
                                    host("node3", N3, as_num="65003")))
    text = render_node_config(s, "node1", N1)
    bird_parse(tmp_path, text)
    assert "local as 65001;" in code(block(text, "template bgp bgp_template"))
    assert bgp_protocols(text) == {"Mesh_10_0_0_2": f"neighbor {N2} as 64511;",
                                   "Mesh_10_0_0_3": f"neighbor {N3} as 65003;"}
    assert "local as 64511;" in code(render_node_config(s, "node2", N2))


@needs_bird
def test_ipip_pool(tmp_path):
    s = snap(pools=(model.Pool("192.168.0.0/16", ipip=True), model.Pool("10.20.0.0/16")))
    text = render_node_config(s, "node1", N1)
    bird_parse(tmp_path, text)
    # confd lists pools by key text: "10.20.0.0-16" sorts before "192.168.0.0-16"
    assert block(text, "filter calico_pools") == (
        "calico_aggr(); if ( net ~ 10.20.0.0/16 ) then { accept; } "
        "if ( net ~ 192.168.0.0/16 ) then { accept; } reject;")
    assert block(text, "filter calico_ipip") == "if ( net ~ 192.168.0.0/16 ) then { accept; } accept;"
    assert "krt_tunnel" in text and "deviation" in text   # documented, only in a comment
    assert "krt_tunnel" not in code(text)


@needs_bird
def test_no_blocks(tmp_path):
    text = render_node_config(snap(affinities=()), "node1", N1)
    bird_parse(tmp_path, text)
    assert "# No static routes configured." in text
    assert "protocol static" not in code(text)
    assert block(text, "function calico_aggr ()") == ""


@needs_bird
def test_several_blocks_and_foreign_affinities(tmp_path):
    s = snap(affinities=(("node1", "192.168.0.128/26"), ("node2", "192.168.0.64/26"),
                         ("node1", "192.168.0.0/26")))
    text = render_node_config(s, "node1", N1)
    bird_parse(tmp_path, text)
    assert block(text, "protocol static") == ("route 192.168.0.0/26 blackhole; "
                                              "route 192.168.0.128/26 blackhole;")
    assert "192.168.0.64" not in text


@needs_bird
@pytest.mark.parametrize("glob, local, expected", [
    (None, None, "debug { states };"),
    ("info", None, "debug { states };"),
    ("debug", None, "debug all;"),
    ("none", None, None),
    ("none", "debug", "debug all;"),        # per-host overrides global
    ("debug", "none", None),
])
def test_loglevel(tmp_path, glob, local, expected):
    s = snap(loglevel=glob, hosts=(LoggingHost("node1", N1, N1, loglevel=local), host("node2", N2)))
    text = render_node_config(s, "node1", N1)
    bird_parse(tmp_path, text)
    for proto in ("protocol device", "protocol direct", "template bgp bgp_template"):
        body = block(text, proto)
        if expected is None:
            assert "debug" not in body
        else:
            assert body.startswith(expected)
    assert "debug" not in block(text, "protocol kernel")


@needs_bird
def test_hosts_without_or_with_empty_ip(tmp_path):
    s = snap(hosts=(host("node1", N1), model.Host("node0", None, ""), model.Host("node9", None, None),
                    host("node2", N2)))
    text = render_node_config(s, "node1", N1)
    bird_parse(tmp_path, text)
    assert set(bgp_protocols(text)) == {"Mesh_10_0_0_2"}
    assert "# For peer /host/node0/ip_addr_v4" in text      # empty: comment, no session
    assert "node9" not in text                              # absent key: nothing


def test_mesh_in_hostname_order_and_peers_in_key_order():
    s = snap(hosts=(host("zeta", "10.0.0.5"), host("alpha", "10.0.0.7"), host("node1", N1)),
             global_peers_v4=(model.Peer("10.0.0.30", "1"), model.Peer("10.0.0.4", "1")))
    names = list(bgp_protocols(render_node_config(s, "node1", N1)))
    assert names == ["Mesh_10_0_0_7", "Mesh_10_0_0_5", "Global_10_0_0_30", "Global_10_0_0_4"]


def test_protocol_id():
    assert config.protocol_id("172.17.8.101") == "172_17_8_101"
    assert config.protocol_id("fd80::1") == "fd80__1"


# -- calico/routereflector ---------------------------------------------------------------------

RR1, RR2 = "10.0.0.4", "10.0.0.5"


def rr_snap(**kw) -> model.Snapshot:
    return snap(node_mesh=False, **kw)


@needs_bird
def test_rr_without_rr_key_is_only_a_device(tmp_path):
    text = render_rr_config(rr_snap(global_peers_v4=(model.Peer(RR1, "64511"),)), RR1)
    bird_parse(tmp_path, text)
    assert code(text) == f"router id {RR1}; protocol device {{ scan time 2; }}"


@needs_bird
def test_rr_as_global_peer_with_cluster_id(tmp_path):
    s = rr_snap(route_reflectors=(model.RouteReflector(RR1, "1.0.0.1"),),
                global_peers_v4=(model.Peer(RR1, "64511"),))
    text = render_rr_config(s, RR1)
    bird_parse(tmp_path, text)
    assert "protocol kernel" not in text and "protocol direct" not in text
    assert block(text, "template bgp bgp_template") == (
        'debug off; description "Connection to BGP peer"; multihop; import all; export all; '
        f"source address {RR1}; graceful restart; {TIMERS}")
    assert bgp_protocols(text) == {
        f"Global_{ip.replace('.', '_')}": f"local as 64511; neighbor {ip} as 64511; rr client; "
                                          "rr cluster id 1.0.0.1; passive on;" for ip in (N1, N2)}
    released = render_rr_config(s, RR1, passive=False)
    bird_parse(tmp_path, released)
    assert "passive" not in released
    assert bgp_protocols(released)["Global_10_0_0_1"] == (
        f"local as 64511; neighbor {N1} as 64511; rr client; rr cluster id 1.0.0.1;")


@needs_bird
def test_rr_as_node_specific_peer_without_cluster_id(tmp_path):
    s = rr_snap(route_reflectors=(model.RouteReflector(RR1),),
                hosts=(host("node1", N1), host("node2", N2, peers_v4=(model.Peer(RR1, "64511"),))))
    text = render_rr_config(s, RR1)
    bird_parse(tmp_path, text)
    assert "# This RR is not a global peer." in text
    assert bgp_protocols(text) == {
        "Node_10_0_0_2": f"local as 64511; neighbor {N2} as 64511; rr client; passive on;"}


@needs_bird
def test_two_rrs_mesh_with_each_other(tmp_path):
    s = rr_snap(route_reflectors=(model.RouteReflector(RR2, "1.0.0.1"), model.RouteReflector(RR1, "1.0.0.1")),
                global_peers_v4=(model.Peer(RR1, "64511"), model.Peer(RR2, "64511")), as_num="64511")
    one, two = render_rr_config(s, RR1), render_rr_config(s, RR2)
    bird_parse(tmp_path, one)
    bird_parse(tmp_path, two)
    # the lower IP connects, the higher one waits (collision avoidance, as in the node mesh)
    assert bgp_protocols(one)["Mesh_10_0_0_5"] == f"local as 64511; neighbor {RR2} as 64511;"
    assert bgp_protocols(two)["Mesh_10_0_0_4"] == f"local as 64511; neighbor {RR1} as 64511; passive on;"
    assert set(bgp_protocols(one)) == {"Mesh_10_0_0_5", "Global_10_0_0_1", "Global_10_0_0_2"}
    assert "rr client" not in bgp_protocols(one)["Mesh_10_0_0_5"]


@needs_bird
def test_rr_skips_nodes_in_another_as(tmp_path):
    s = rr_snap(route_reflectors=(model.RouteReflector(RR1),),
                global_peers_v4=(model.Peer(RR1, "64511"),),
                hosts=(host("node1", N1), host("node2", N2, as_num="65002")))
    text = render_rr_config(s, RR1)
    bird_parse(tmp_path, text)     # 2016 emitted an eBGP `rr client`, which BIRD refuses
    assert set(bgp_protocols(text)) == {"Global_10_0_0_1"}
    assert "# Skipping 10.0.0.2: its AS 65002 differs from this RR's AS 64511" in text


@needs_bird
def test_rr_global_and_node_specific_for_the_same_node(tmp_path):
    s = rr_snap(route_reflectors=(model.RouteReflector(RR1),),
                global_peers_v4=(model.Peer(RR1, "64511"),),
                hosts=(host("node1", N1, peers_v4=(model.Peer(RR1, "64511"),)), host("node2", N2)))
    text = render_rr_config(s, RR1)
    bird_parse(tmp_path, text)
    assert set(bgp_protocols(text)) == {"Global_10_0_0_1", "Global_10_0_0_2", "Node_10_0_0_1"}
