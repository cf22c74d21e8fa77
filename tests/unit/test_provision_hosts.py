"""lab/provision_hosts.py without a host: the files it writes, compared with the tutorial's own
text (quoted in tests/tutorial_texts.py, checked against shared/seed when it is there), the
plan's order and triggers, and the one-line refusals.

Building a plan contacts no host (checks run only in `run`), so the hosts here are lab
transports that are never used."""
from __future__ import annotations

import difflib
import re
from types import SimpleNamespace

import pytest

from lab import paths, provision_hosts as ph
from lab.errors import LabError
from lab.transport import LocalNamespaceHost
from tests.tutorial_texts import SEED, TUTORIAL_DOCKERFILE, TUTORIAL_FILES

AUTH = "192.168.20.1:2379"
SEED_TARGET = ph.ProvisionTarget((("node1", "192.168.20.1", ("calico-node",)),
                                  ("node2", "192.168.20.2", ("calico-node",))), "node1", AUTH)
RR_TARGET = ph.ProvisionTarget(SEED_TARGET.hosts + (("rr1", "192.168.20.4", ("route-reflector",)),),
                               "node1", AUTH)

# CentOS 7's /etc/etcd/etcd.conf as `yum install etcd` (3.x) leaves it, abridged
CENTOS_ETCD_CONF = """\
#[Member]
#ETCD_CORS=""
ETCD_DATA_DIR="/var/lib/etcd/default.etcd"
#ETCD_LISTEN_PEER_URLS="http://localhost:2380"
ETCD_LISTEN_CLIENT_URLS="http://localhost:2379"
ETCD_NAME="default"
#
#[Clustering]
#ETCD_INITIAL_ADVERTISE_PEER_URLS="http://localhost:2380"
ETCD_ADVERTISE_CLIENT_URLS="http://localhost:2379"
#ETCD_DISCOVERY=""
"""
CENTOS_BASHRC = """\
# .bashrc

# User specific aliases and functions

alias rm='rm -i'

# Source global definitions
if [ -f /etc/bashrc ]; then
\t. /etc/bashrc
fi
"""


def quoted(marker: str) -> list[str]:
    """The tutorial's `>`-quoted file after `marker`."""
    return TUTORIAL_FILES[marker]


def seed_quoted(tutorial: str, marker: str) -> list[str]:
    """The same read from the tutorial itself: the `>` lines after `marker`, markdown undone,
    blank lines dropped (the tutorial puts a blank quote line between most lines)."""
    lines = tutorial[tutorial.index(marker):].splitlines()[1:]
    out = []
    for line in lines:
        if line.strip() and not line.startswith(">"):
            if out:
                break
            continue
        text = line[1:].strip().replace("\\[", "[").replace("\\]", "]")
        if text:
            out.append(text)
    return out


@pytest.mark.skipif(not SEED.exists(), reason="seed tutorial not available")
def test_quoted_files_are_the_seeds():
    tutorial = SEED.read_text(encoding="utf-8")
    assert {m: seed_quoted(tutorial, m) for m in TUTORIAL_FILES} == TUTORIAL_FILES
    after = tutorial[tutorial.index("Dockerfile 如下"):]
    assert after.split("```")[1].lstrip("\n") == TUTORIAL_DOCKERFILE


def nonblank(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# -- the files, against the tutorial ----------------------------------------------------------

def test_docker_override_is_the_tutorials():
    assert nonblank(ph.docker_override(AUTH)) == quoted(
        "vim /etc/systemd/system/docker.service.d/override.conf")


def test_docker_override_names_the_given_authority():
    assert "--cluster-store=etcd://10.0.0.5:4001\n" in ph.docker_override("10.0.0.5:4001")


def test_docker_socket_is_the_tutorials():
    assert nonblank(ph.docker_socket()) == quoted("vim /usr/lib/systemd/system/docker.socket")


@pytest.mark.parametrize("unit", ph.CALICO_UNITS)
def test_calico_units_are_the_tutorials(unit):
    assert nonblank(ph.calico_unit(unit)) == quoted(f"创建服务文件`/usr/lib/systemd/system/{unit}.service`")


def test_etcd_conf_from_nothing_is_the_tutorials_two_lines():
    url = f"http://{AUTH}"
    assert nonblank(ph.etcd_conf(None, url, url)) == quoted("vim /etc/etcd/etcd.conf")


def test_etcd_conf_edit_keeps_every_other_line():
    url = f"http://{AUTH}"
    new = ph.etcd_conf(CENTOS_ETCD_CONF, url, url)
    changed = [d for d in difflib.ndiff(CENTOS_ETCD_CONF.splitlines(), new.splitlines())
               if d[:1] in "+-"]
    assert changed == ['- ETCD_LISTEN_CLIENT_URLS="http://localhost:2379"',
                       f'+ ETCD_LISTEN_CLIENT_URLS="{url}"',
                       '- ETCD_ADVERTISE_CLIENT_URLS="http://localhost:2379"',
                       f'+ ETCD_ADVERTISE_CLIENT_URLS="{url}"']
    assert ph.etcd_conf(new, url, url) == new   # a second run changes nothing


def test_etcd_conf_with_only_commented_defaults_sets_each_below_its_comment():
    conf = '#ETCD_LISTEN_CLIENT_URLS="http://localhost:2379"\nETCD_NAME="default"\n' \
           '# ETCD_ADVERTISE_CLIENT_URLS="http://localhost:2379"\n'
    assert ph.etcd_conf(conf, "http://a:1", "http://b:2").splitlines() == [
        '#ETCD_LISTEN_CLIENT_URLS="http://localhost:2379"', 'ETCD_LISTEN_CLIENT_URLS="http://a:1"',
        'ETCD_NAME="default"', '# ETCD_ADVERTISE_CLIENT_URLS="http://localhost:2379"',
        'ETCD_ADVERTISE_CLIENT_URLS="http://b:2"']


def test_bashrc_gets_the_tutorials_export_once():
    new = ph.bashrc(CENTOS_BASHRC, AUTH)
    assert new == CENTOS_BASHRC + quoted("vim .bashrc")[0] + "\n"
    assert ph.bashrc(new, AUTH) == new


def test_bashrc_replaces_an_older_authority_in_place():
    old = "export ETCD_AUTHORITY=10.0.0.9:2379\nalias ll='ls -l'\n"
    assert ph.bashrc(old, AUTH) == f"export ETCD_AUTHORITY={AUTH}\nalias ll='ls -l'\n"


def test_set_line_without_a_final_newline_or_file():
    assert ph.set_line("a=1", re.compile("b="), "b=2") == "a=1\nb=2\n"
    assert ph.set_line(None, re.compile("b="), "b=2") == "b=2\n"


def test_dockerfile_is_the_tutorials():
    assert ph.DOCKERFILE == TUTORIAL_DOCKERFILE


# -- the plan, built without touching a host -----------------------------------------------------

def _hosts(target: ph.ProvisionTarget) -> dict[str, LocalNamespaceHost]:
    return {name: LocalNamespaceHost(name, net="/nonexistent") for name, _, _ in target.hosts}


def _rows(steps):
    return [(s.host.name, s.what) for s in steps]


def test_plan_follows_the_tutorial_etcd_then_docker_then_calico_then_the_image():
    steps = ph.plan(SEED_TARGET, _hosts(SEED_TARGET))
    docker = lambda n: [(n, ph.DOCKER_SOCKET), (n, ph.DOCKER_OVERRIDE),  # noqa: E731
                        (n, "$ systemctl daemon-reload"), (n, "$ systemctl enable docker.service"),
                        (n, "$ systemctl restart docker.service")]
    calico = lambda n, ip: [  # noqa: E731
        (n, ph.BASHRC),
        (n, f"$ env ETCD_AUTHORITY={AUTH} calicoctl node --ip={ip} --libnetwork"),
        (n, "/usr/lib/systemd/system/calico-node.service"),
        (n, "/usr/lib/systemd/system/calico-libnetwork.service"),
        (n, "$ systemctl daemon-reload"),
        (n, "$ systemctl enable calico-node.service calico-libnetwork.service")]
    image = lambda n: [(n, "$ docker build -t calico-net-test:1.0 -")]  # noqa: E731
    assert _rows(steps) == [
        ("node1", ph.ETCD_CONF), ("node1", "$ systemctl enable etcd.service"),
        ("node1", "$ systemctl restart etcd.service"),
        *docker("node1"), *docker("node2"),
        *calico("node1", "192.168.20.1"), *calico("node2", "192.168.20.2"),
        *image("node1"), *image("node2")]


def test_reloads_and_restarts_follow_the_files_they_depend_on():
    steps = ph.plan(SEED_TARGET, _hosts(SEED_TARGET))

    def triggers(host: str, what: str, nth: int = 0) -> list[str]:
        step = [s for s in steps if (s.host.name, s.what) == (host, what)][nth]
        return [t.what for t in step.triggers]
    assert triggers("node1", "$ systemctl restart etcd.service") == [ph.ETCD_CONF]
    for what in ("$ systemctl daemon-reload", "$ systemctl restart docker.service"):
        assert triggers("node2", what) == [ph.DOCKER_SOCKET, ph.DOCKER_OVERRIDE]
    assert triggers("node2", "$ systemctl daemon-reload", 1) == [
        f"{ph.UNIT_DIR}/{u}.service" for u in ph.CALICO_UNITS]
    assert triggers("node2", "$ systemctl enable docker.service") == []


def test_the_image_step_shows_the_dockerfile_it_feeds_to_docker_build():
    image = ph.plan(SEED_TARGET, _hosts(SEED_TARGET))[-1]
    assert image.preview() == ["$ docker build -t calico-net-test:1.0 -", "  with stdin:",
                               "  | FROM centos", "  | ENV LANG en_US.UTF-8", "  | ",
                               "  | RUN yum install -y nc telnet"]


def test_a_route_reflector_host_gets_docker_and_the_image_but_no_calico_node():
    rr = [s.what for s in ph.plan(RR_TARGET, _hosts(RR_TARGET)) if s.host.name == "rr1"]
    assert ph.DOCKER_OVERRIDE in rr and "$ docker build -t calico-net-test:1.0 -" in rr
    assert not any("calicoctl" in w or "calico-node" in w or w == ph.BASHRC for w in rr)


def test_without_an_etcd_host_no_etcd_step():
    target = ph.ProvisionTarget(SEED_TARGET.hosts, None, "etcd.example:2379")
    steps = ph.plan(target, _hosts(target))
    assert not any("etcd.service" in s.what or s.what == ph.ETCD_CONF for s in steps)
    assert "--cluster-store=etcd://etcd.example:2379" in steps[1].render(None)


def test_etcd_listens_on_its_hosts_ip_and_advertises_the_authority():
    target = ph.ProvisionTarget(SEED_TARGET.hosts, "node1", "etcd.lab:4001")
    conf = ph.plan(target, _hosts(target))[0]
    assert conf.render(None) == ('ETCD_LISTEN_CLIENT_URLS="http://192.168.20.1:4001"\n'
                                 'ETCD_ADVERTISE_CLIENT_URLS="http://etcd.lab:4001"\n')


def test_root_prefixes_files_only():
    steps = ph.plan(SEED_TARGET, _hosts(SEED_TARGET), root="/run/scratch")
    files = [s.path for s in steps if isinstance(s, ph.FileStep)]
    assert files and all(f.startswith("/run/scratch/") for f in files)
    assert "/run/scratch/etc/etcd/etcd.conf" in files
    commands = [s.argv for s in steps if isinstance(s, ph.CommandStep)]
    assert ("systemctl", "restart", "docker.service") in commands


def test_plan_refuses_a_host_without_connection_and_an_unknown_etcd_host():
    with pytest.raises(LabError, match="no connection for host.*node2"):
        ph.plan(SEED_TARGET, {"node1": LocalNamespaceHost("node1", net="/nonexistent")})
    target = ph.ProvisionTarget(SEED_TARGET.hosts, "node9", AUTH)
    with pytest.raises(LabError, match="etcd host 'node9' is not one of the hosts"):
        ph.plan(target, _hosts(target))


# -- refusals, guard, summary -------------------------------------------------------------------

def test_refusal_is_one_line_grouped_by_host_with_one_systemd_hint():
    text = ph.describe([("node1", ph.NOT_BOOTED), ("node2", ph.NO_SYSTEMCTL),
                        ("node1", "docker is not installed")])
    assert "\n" not in text
    assert text == (f"node1: {ph.NOT_BOOTED}, docker is not installed; node2: {ph.NO_SYSTEMCTL} "
                    "(the tutorial's hosts are systemd hosts, CentOS 7)")


def test_lab_guard_refuses_what_would_touch_this_machine():
    hosts = _hosts(SEED_TARGET)
    at_root = ph.lab_guard(ph.plan(SEED_TARGET, hosts))
    assert [name for name, _ in at_root] == ["node1", "node2"]
    assert "/etc/etcd/etcd.conf" in at_root[0][1] and "this machine" in at_root[0][1]
    scratch = ph.plan(SEED_TARGET, hosts, root="/run/scratch")
    assert ph.lab_guard([s for s in scratch if not (isinstance(s, ph.CommandStep)
                                                    and s.argv[0] == "systemctl")]) == []
    systemctl = [s for s in scratch if isinstance(s, ph.CommandStep) and s.argv[0] == "systemctl"]
    assert ph.lab_guard(systemctl[:1])[0][0] == "node1"
    # the node's run dir is the machine's own /run/<prefix>/<node>, bound back
    shared = ph.plan(SEED_TARGET, hosts, root=f"{paths.RUN}/node1")
    assert ph.lab_guard([s for s in shared if isinstance(s, ph.FileStep)])


def test_summary_lines():
    steps = ph.plan(SEED_TARGET, _hosts(SEED_TARGET))
    assert str(ph.Summary(False, [], steps)) == f"nothing to change: all {len(steps)} step(s) already satisfied"
    dry = ph.Summary(True, steps[:4], steps[4:])
    assert str(dry) == (f"4 step(s) would change (node1: 4), {len(steps) - 4} already satisfied; "
                        "dry run: nothing was changed")


# -- inventory ----------------------------------------------------------------------------------

def test_from_inventory_reads_by_duck_typing():
    inv = SimpleNamespace(
        hosts=(SimpleNamespace(name="a", ip="10.0.0.1", roles=["calico-node"]),
               SimpleNamespace(name="b", ip="10.0.0.2", roles=("route-reflector",))),
        etcd=SimpleNamespace(host="a", authority="10.0.0.1:2379", url="http://10.0.0.1:2379"))
    assert ph.from_inventory(inv) == ph.ProvisionTarget(
        (("a", "10.0.0.1", ("calico-node",)), ("b", "10.0.0.2", ("route-reflector",))),
        "a", "10.0.0.1:2379")


def test_from_inventory_refuses_an_https_etcd():
    inv = SimpleNamespace(hosts=(), etcd=SimpleNamespace(host=None, authority="e:2379",
                                                         url="https://e:2379"))
    with pytest.raises(LabError, match="plain-HTTP etcd"):
        ph.from_inventory(inv)


def test_from_the_bundled_example_inventory():
    from lab.inventory import load_inventory
    target = ph.from_inventory(load_inventory(paths_example()))
    assert target.etcd_host == "node1" and target.etcd_authority == AUTH
    assert target.hosts == (("node1", "192.168.20.1", ("calico-node",)),
                            ("node2", "192.168.20.2", ("calico-node",)),
                            ("rr1", "192.168.20.4", ("route-reflector",)))


def paths_example() -> str:
    from tests.helpers import ROOT
    return str(ROOT / "lab" / "inventories" / "example.yaml")
