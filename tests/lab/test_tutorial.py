"""The tutorial, replayed command by command in the lab's node shells (`python -m lab up --bare`).

Each test is one section of ../shared/seed (the Chinese Calico-on-Docker tutorial), in its
order, typed as a user would type it on node1 or node2, and checked against the tutorial's
own results and the spec. Where the tutorial slips, the evident intent is followed; the
README's "Tutorial" section lists each deviation (marked DEVIATION here).
"""
from __future__ import annotations

import re
import shlex

import pytest

from lab import proc, state
from lab.transport import lab_hosts
from tests.helpers import lab_cli
from tests.tutorial_texts import MYSQLDB_RULE_JSON, TUTORIAL_SHOW as WEB_RULES_SHOWN, WEB_RULE_JSON

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def hosts():
    up = lab_cli("up", "--bare")
    assert up.returncode == 0, up.stderr
    yield lab_hosts(state.load().topology)
    assert lab_cli("down").returncode == 0


def sh(hosts, node: str, line: str, ok: bool = True, timeout: float = 90) -> str:
    """One command line typed in the node's root shell; its stdout (+stderr)."""
    res = hosts[node].run(["bash", "-c", line], timeout=timeout)
    out = res.stdout + res.stderr
    if ok:
        assert res.rc == 0, f"{node}# {line}\nexit {res.rc}:\n{out}"
    return out


def listen(hosts, node: str, container: str, port: int) -> None:
    """The tutorial's `nc -l PORT` inside a container, kept serving (busybox nc -ll)."""
    sh(hosts, node, f"docker exec -d {container} nc -ll -p {port} -e echo {container}-{port}")


def reaches(hosts, node: str, source: str | None, ip: str, port: int) -> bool:
    """`nc IP PORT` from a container, or typed on the node itself when source is None (the
    tutorial's "node2# nc 192.168.22.1 80": the node's own nc)."""
    nc = f"nc -w 2 {ip} {port} </dev/null"
    line = f"docker exec {source} sh -c {shlex.quote(nc)}" if source else nc
    return f"-{port}" in sh(hosts, node, line, ok=False)


def test_01_calicoctl_node_on_both_hosts(hosts):
    for node, ip in (("node1", "192.168.20.1"), ("node2", "192.168.20.2")):
        # DEVIATION: NO_DEFAULT_POOLS=true, or calico/node would add 192.168.0.0/16 and every
        # `pool add` of the tutorial would overlap it
        out = sh(hosts, node, f"NO_DEFAULT_POOLS=true calicoctl node --ip={ip} --libnetwork")
        assert "Calico node started successfully" in out
        assert "Calico libnetwork driver is running with id:" in out
        ps = sh(hosts, node, "docker inspect -f '{{.Name}} {{.State.Running}} "
                             "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.NetworkMode}}' "
                             "calico-node calico-libnetwork")
        assert ps.split("\n")[:2] == ["/calico-node true always host",
                                      "/calico-libnetwork true always host"], ps


def test_02_pools(hosts):
    sh(hosts, "node1", "calicoctl pool add 192.168.21.0/24")
    sh(hosts, "node1", "calicoctl pool add 192.168.21.0/24 --nat-outgoing --ipip")
    shown = sh(hosts, "node2", "calicoctl pool show")
    assert re.search(r"\| 192\.168\.21\.0/24 \| ipip,nat-outgoing \|", shown), shown


def test_03_web_network_is_global_on_both_hosts(hosts):
    sh(hosts, "node1", "calicoctl pool add 192.168.22.0/24")
    sh(hosts, "node1", "docker network create --driver calico --ipam-driver calico "
                       "--subnet=192.168.22.0/24 web")
    # DEVIATION: calico-net-test:1.0 instead of centos (no registry here)
    sh(hosts, "node1", "docker run --net web --name container_1 --ip 192.168.22.1 -tid calico-net-test:1.0")
    for node in ("node1", "node2"):
        listing = sh(hosts, node, "docker network ls")
        assert re.search(r"^[0-9a-f]{12}\s+web\s+calico\s+global\s*$", listing, re.M), listing


def test_04_containers_on_two_hosts_ping_each_other(hosts):
    sh(hosts, "node2", "docker run --net web --name container_2 --ip 192.168.22.2 -tid calico-net-test:1.0")
    # DEVIATION: the tutorial pings with the wrong names (web_contianer_1) and addresses
    for node, container, peer in (("node1", "container_1", "192.168.22.2"),
                                  ("node2", "container_2", "192.168.22.1")):
        proc.wait_until(lambda: "0% packet loss" in sh(
            hosts, node, f"docker exec {container} ping -c 1 -W 1 {peer}", ok=False), 20,
            f"{container} on {node} to ping {peer}")


def test_05_bird_holds_a_bgp_session_on_port_179(hosts):
    # DEVIATION: `ss` for `netstat -anpt` (net-tools is not installed)
    session = re.compile(r"ESTAB.*192\.168\.20\.1:\d+\s+192\.168\.20\.2:179.*bird|"
                         r"ESTAB.*192\.168\.20\.1:179\s+192\.168\.20\.2:\d+.*bird")
    proc.wait_until(lambda: session.search(sh(hosts, "node1", "ss -tnp")), 15,
                    "an established BGP session between 192.168.20.1 and 192.168.20.2 port 179")


def test_06_routes_as_the_tutorial_explains(hosts):
    node1, node2 = sh(hosts, "node1", "ip route"), sh(hosts, "node2", "ip route")
    # own workload: a /32 on its cali veth; the block it sits in: blackholed by its owner
    assert re.search(r"^192\.168\.22\.1 dev cali[0-9a-f]{11} scope link", node1, re.M), node1
    assert re.search(r"^blackhole 192\.168\.22\.0/26 proto bird", node1, re.M), node1
    assert re.search(r"^192\.168\.22\.2 dev cali[0-9a-f]{11} scope link", node2, re.M), node2
    # the peer's block via the peer, and the /32 the peer holds inside a foreign block
    assert re.search(r"^192\.168\.22\.0/26 via 192\.168\.20\.1 dev eth0 proto bird", node2, re.M), node2
    assert re.search(r"^192\.168\.22\.2 via 192\.168\.20\.2 dev eth0 proto bird", node1, re.M), node1


def test_07_profile_named_after_the_network_id_shows_by_name(hosts):
    network_id = sh(hosts, "node1", "docker network inspect -f '{{.Id}}' web").strip()
    assert re.search(rf"\| {network_id} \|", sh(hosts, "node2", "calicoctl profile show"))
    assert sh(hosts, "node2", "calicoctl profile web rule show") == (
        "Inbound rules:\n   1 allow from tag web\nOutbound rules:\n   1 allow\n")


def test_08_three_networks(hosts):
    # DEVIATION: the tutorial never adds pools for 192.168.23/24 before using them as subnets
    sh(hosts, "node1", "calicoctl pool add 192.168.23.0/24 192.168.24.0/24")
    for net, subnet in (("mysqldb", "192.168.23.0/24"), ("app", "192.168.24.0/24")):
        sh(hosts, "node1", f"docker network create --driver calico --ipam-driver calico "
                           f"--subnet={subnet} {net}")
    listing = sh(hosts, "node2", "docker network ls")
    for net in ("web", "mysqldb", "app"):
        assert re.search(rf"\s{net}\s+calico\s+global", listing), listing


def test_09_web_exposes_80_and_443(hosts):
    sh(hosts, "node1", "calicoctl profile web rule add inbound allow tcp to ports 80,443")
    assert sh(hosts, "node1", "calicoctl profile web rule show") == WEB_RULES_SHOWN


def test_10_only_80_and_443_of_web_reach_from_node2(hosts):
    # DEVIATION: container_1 already holds 192.168.22.1, which the ACL part reuses
    sh(hosts, "node1", "docker rm -f container_1")
    sh(hosts, "node1", "docker run --net web --name web_container_1 --ip 192.168.22.1 -td calico-net-test:1.0")
    for port in (80, 443, 8080):
        listen(hosts, "node1", "web_container_1", port)
    seen = {port: reaches(hosts, "node2", None, "192.168.22.1", port) for port in (80, 443, 8080)}
    assert seen == {80: True, 443: True, 8080: False}


def test_10_the_hosts_have_the_tutorials_nc(hosts):
    """`nc IP PORT` and ncat's `nc -l PORT` typed on a node, as on the tutorial's CentOS hosts
    (here over the node's own loopback)."""
    for node in ("node1", "node2"):
        assert sh(hosts, node, "command -v nc").strip().endswith("/lab/bin/nc")
    out = sh(hosts, "node1", "timeout 10 nc -l 7000 & for i in 1 2 3 4 5 6 7 8 9 10; do "
                             "echo tutorial | nc -w 2 127.0.0.1 7000 && break; sleep 0.2; done; wait")
    assert "tutorial" in out, out


def test_11_web_rules_updated_from_json(hosts, tmp_path):
    rule_file = tmp_path / "web-rule.json"
    rule_file.write_text(WEB_RULE_JSON)
    out = sh(hosts, "node1", f"calicoctl profile web rule update < {rule_file}")
    assert out.strip() == "Successfully updated rules on profile web"
    assert sh(hosts, "node2", "calicoctl profile web rule show") == WEB_RULES_SHOWN


def test_12_app_reachable_only_from_web(hosts):
    # DEVIATION: `profile app rule add inbound …` (the tutorial drops the word `rule`)
    sh(hosts, "node1", "calicoctl profile app rule add inbound allow from tag web")
    # DEVIATION: 192.168.24.1 in app's own subnet (the tutorial gives it mysqldb's .23.1)
    sh(hosts, "node2", "docker run --net app --name app_container_1 --ip 192.168.24.1 -td calico-net-test:1.0")
    sh(hosts, "node1", "docker run --net mysqldb --name mysqldb_container_1 --ip 192.168.23.1 -td calico-net-test:1.0")
    listen(hosts, "node2", "app_container_1", 9000)
    assert reaches(hosts, "node1", "web_container_1", "192.168.24.1", 9000)
    assert not reaches(hosts, "node1", "mysqldb_container_1", "192.168.24.1", 9000)


def test_13_mysqldb_3306_from_app(hosts):
    # DEVIATION: `rule add` where the tutorial says `rule remove`
    sh(hosts, "node1", "calicoctl profile mysqldb rule add inbound allow tcp from tag app to ports 3306")
    listen(hosts, "node1", "mysqldb_container_1", 3306)
    listen(hosts, "node1", "mysqldb_container_1", 3307)
    assert reaches(hosts, "node2", "app_container_1", "192.168.23.1", 3306)
    assert not reaches(hosts, "node2", "app_container_1", "192.168.23.1", 3307)
    assert not reaches(hosts, "node1", "web_container_1", "192.168.23.1", 3306)


def test_14_db_users_tag_opens_3306(hosts, tmp_path):
    sh(hosts, "node1", "docker network create --driver calico --ipam-driver calico db-users")
    # DEVIATION: db-users (the tutorial writes db_users, a profile that does not exist)
    sh(hosts, "node1", "calicoctl profile db-users rule remove inbound allow from tag db-users")
    # DEVIATION: the tutorial only says to tag app's profile; this is the command for it
    out = sh(hosts, "node1", "calicoctl profile app tag add db-users")
    assert out.strip() == "Tag db-users added to profile app"
    rule_file = tmp_path / "mysqldb-rule.json"
    rule_file.write_text(MYSQLDB_RULE_JSON)
    sh(hosts, "node1", f"calicoctl profile mysqldb rule update < {rule_file}")
    assert sh(hosts, "node1", "calicoctl profile mysqldb rule show") == (
        "Inbound rules:\n   1 allow from tag mysqldb\n   2 allow tcp from tag db-users to ports 3306\n"
        "Outbound rules:\n   1 allow\n")
    assert reaches(hosts, "node2", "app_container_1", "192.168.23.1", 3306)
    assert not reaches(hosts, "node1", "web_container_1", "192.168.23.1", 3306)
    # the tag is what opens it: without it, app is no longer a db user
    sh(hosts, "node1", "calicoctl profile app tag remove db-users")
    assert not reaches(hosts, "node2", "app_container_1", "192.168.23.1", 3306)


def test_15_node_stop_and_remove_guard_running_workloads(hosts):
    """Not in the tutorial: taking node2 out of Calico again (spec §3.2), last as it is final."""
    out = sh(hosts, "node2", "calicoctl node stop", ok=False)
    assert out.strip() == "Current host has active endpoints so can't be stopped. Force with --force"
    assert sh(hosts, "node2", "calicoctl node stop --force").strip() == "Node stopped"
    assert sh(hosts, "node2", "calicoctl status", ok=False).strip() == "calico-node container not running"
    out = sh(hosts, "node2", "calicoctl node remove", ok=False)
    assert out.strip() == ("The node has active Calico endpoints so can't be deleted. "
                           "Force with --remove-endpoints")
    assert sh(hosts, "node2", "calicoctl node remove --remove-endpoints").strip() == "Node configuration removed"
    shown = sh(hosts, "node1", "calicoctl node show")
    assert "node1" in shown and "node2" not in shown, shown
