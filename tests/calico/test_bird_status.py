"""`calicoctl status` BGP table (spec §3.3) from canned `birdc show protocols` output."""
from __future__ import annotations

from lab.calico.bird import status
from lab.calico.bird.status import ProtocolRow

# The spec's example, from "IPv4 BGP status" to the end, byte for byte.
SPEC_EXAMPLE = """\
IPv4 BGP status
IP: 172.17.8.100    AS Number: 64511 (inherited)
+--------------+-------------------+-------+----------+-------------+
| Peer address |     Peer type     | State |  Since   |     Info    |
+--------------+-------------------+-------+----------+-------------+
| 172.17.8.101 | node-to-node mesh |   up  | 17:54:00 | Established |
+--------------+-------------------+-------+----------+-------------+

IPv6 BGP status
No IPv6 address configured."""

# BIRD 1.6.8 as captured on this machine (columns "%-8s %-8s %-8s %-5s %-10s %s"; BGP info
# itself is padded to 14 before the last error), with a Calico peer of each kind.
BIRDC_OUTPUT = """\
BIRD 1.6.8 ready.
name     proto    table    state  since       info
static1  Static   master   up     17:53:58    
kernel1  Kernel   master   up     17:53:58    
device1  Device   master   up     17:53:58    
direct1  Direct   master   up     17:53:58    
Mesh_172_17_8_101 BGP      master   up     17:54:00    Established   
Global_172_17_8_4 BGP      master   start  17:53:58    Active        Socket: Connection refused
Node_10_0_0_9 BGP      master   start  17:53:58    Connect       
"""


def test_spec_example_exactly():
    birdc = ("BIRD 1.6.8 ready.\n"
             "name     proto    table    state  since       info\n"
             "kernel1  Kernel   master   up     17:53:58    \n"
             "Mesh_172_17_8_101 BGP      master   up     17:54:00    Established   \n")
    lines = (status.bgp_status_lines(4, "172.17.8.100", "64511", True, birdc)
             + status.bgp_status_lines(6, None, "64511", True, None))
    assert "\n".join(lines).rstrip("\n") == SPEC_EXAMPLE


def test_parse_protocols():
    rows = status.parse_protocols(BIRDC_OUTPUT)
    assert [r.name for r in rows] == ["static1", "kernel1", "device1", "direct1",
                                      "Mesh_172_17_8_101", "Global_172_17_8_4", "Node_10_0_0_9"]
    assert rows[0] == ProtocolRow("static1", "Static", "master", "up", "17:53:58", "")
    assert rows[5] == ProtocolRow("Global_172_17_8_4", "BGP", "master", "start", "17:53:58",
                                  "Active Socket: Connection refused")


def test_peer_rows_keep_only_calico_bgp_protocols():
    assert status.peer_rows(status.parse_protocols(BIRDC_OUTPUT)) == [
        ("172.17.8.101", "node-to-node mesh", "up", "17:54:00", "Established"),
        ("172.17.8.4", "global", "start", "17:53:58", "Active Socket: Connection refused"),
        ("10.0.0.9", "node specific", "start", "17:53:58", "Connect"),
    ]


def test_table_of_three_peers():
    assert status.bgp_table(BIRDC_OUTPUT) == """\
+--------------+-------------------+-------+----------+-----------------------------------+
| Peer address |     Peer type     | State |  Since   |                Info               |
+--------------+-------------------+-------+----------+-----------------------------------+
| 172.17.8.101 | node-to-node mesh |   up  | 17:54:00 |            Established            |
|  172.17.8.4  |       global      | start | 17:53:58 | Active Socket: Connection refused |
|   10.0.0.9   |   node specific   | start | 17:53:58 |              Connect              |
+--------------+-------------------+-------+----------+-----------------------------------+"""


def test_no_peers_prints_header_and_two_rules():
    birdc = "BIRD 1.6.8 ready.\nname     proto    table    state  since       info\n" \
            "device1  Device   master   up     17:53:58    \n"
    assert status.bgp_table(birdc) == """\
+--------------+-----------+-------+-------+------+
| Peer address | Peer type | State | Since | Info |
+--------------+-----------+-------+-------+------+
+--------------+-----------+-------+-------+------+"""


def test_interactive_birdcl_noise_and_long_time_format():
    # `echo show protocols | birdcl` echoes prompts and cursor escapes around the table
    birdc = ("BIRD 1.6.8 ready.\n\x1b[?1034hbird> name     proto    table    state  since       info\n"
             "Mesh_10_0_0_2 BGP      master   up     2016-06-01 17:54:00  Established\n"
             "bird> \n")
    assert status.peer_rows(status.parse_protocols(birdc)) == [
        ("10.0.0.2", "node-to-node mesh", "up", "2016-06-01 17:54:00", "Established")]


def test_unparseable_output_is_printed_raw():
    assert status.bgp_table("Unable to connect to server control socket\n") == \
        "Unable to connect to server control socket"


def test_ipv6_names_and_unreachable_bird():
    birdc = "name proto table state since info\nMesh_fd80_24e2__2 BGP master up 17:54:00 Established\n"
    assert status.peer_rows(status.parse_protocols(birdc), ipv6=True)[0][0] == "fd80:24e2::2"
    assert status.bgp_status_lines(4, "10.0.0.1", "64512", False, None) == [
        "IPv4 BGP status", "IP: 10.0.0.1    AS Number: 64512", "Couldn't connect to bird.", ""]
