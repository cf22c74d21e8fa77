"""calicoctl 0.22's endpoint, container, checksystem, diags, config and version (spec §3.1,
§3.7, §3.8; issue 18): grammar, tables, messages and exit codes, in-process on the loopback
etcd (the `ctl` fixture). What needs a node — veths, Docker, BIRD — runs in the seed lab in
tests/lab/test_calicoctl_lab.py.

Endpoints are written here as raw etcd JSON, the way the libnetwork plugin stores them (spec
§1.4), not through the reference node's own writer.
"""
from __future__ import annotations

import json
import os
import re
import tarfile

import pytest

from lab.calico.calicoctl import checksystem, containerns, diags
from lab.provision import ipip_supported

MAC = "EE:EE:EE:EE:EE:EE"
SUMMARY_EMPTY = (
    "+----------+-----------------+---------------------+---------------------+\n"
    "| Hostname | Orchestrator ID | Number of Workloads | Number of Endpoints |\n"
    "+----------+-----------------+---------------------+---------------------+\n"
    "+----------+-----------------+---------------------+---------------------+\n\n")


def put_endpoint(ctl, host, orch, workload, ep_id, nets=(), profiles=(), mac=MAC, v6=(),
                 state="active"):
    key = f"/calico/v1/host/{host}/workload/{orch}/{workload}/endpoint/{ep_id}"
    ctl.etcd.write(key, json.dumps({
        "state": state, "name": f"cali{ep_id[:11]}", "mac": mac, "profile_ids": list(profiles),
        "labels": {}, "ipv4_nets": list(nets), "ipv6_nets": list(v6)}))
    return key


def put_profile(ctl, name):
    ctl.etcd.write(f"/calico/v1/policy/profile/{name}/tags", json.dumps([name]))
    ctl.etcd.write(f"/calico/v1/policy/profile/{name}/rules", json.dumps(
        {"inbound_rules": [], "outbound_rules": [{"action": "allow"}]}))


def stored_profiles(ctl, key):
    return json.loads(ctl.etcd.read(key).value)["profile_ids"]


@pytest.fixture
def seeded(ctl):
    """Two hosts: libnetwork endpoints on both, calicoctl-container workloads on node2."""
    put_endpoint(ctl, "node1", "libnetwork", "libnetwork", "ep1", ["192.168.22.1/32"], ["net1"])
    put_endpoint(ctl, "node1", "libnetwork", "libnetwork", "ep2", ["192.168.22.2/32"],
                 ["net1", "net2"])
    put_endpoint(ctl, "node2", "docker", "w1", "ep3", ["192.168.24.5/32", "192.168.24.10/32"],
                 mac="aa:bb:cc:dd:ee:ff", v6=["fd80::1/128"])
    put_endpoint(ctl, "node2", "docker", "w1", "ep4", mac="aa:bb:cc:dd:ee:00")
    put_endpoint(ctl, "node2", "docker", "w2", "ep5", mac="aa:bb:cc:dd:ee:01", state="inactive")
    put_endpoint(ctl, "node2", "libnetwork", "libnetwork", "ep6", ["192.168.22.3/32"], ["net1"])
    for p in ("net1", "net2", "extra"):
        put_profile(ctl, p)
    return ctl


# -- top level and version (§3.1) -------------------------------------------------------------

def test_usage_lists_every_command_and_etcd_endpoints(ctl):
    rc, out = ctl("frobnicate")
    assert rc == 1
    assert out.startswith("Override the host:port of the ETCD server by setting the environment "
                          "variable:\nETCD_ENDPOINTS [example: http://1.2.3.4:2379,"
                          "http://1.2.3.5:2379]\nor, if ETCD_ENDPOINTS is left unset:\n"
                          "ETCD_AUTHORITY [default: 127.0.0.1:2379]\n")
    listed = re.findall(r"^    (\w+)\s{2,}", out, re.M)
    assert listed == ["status", "node", "container", "profile", "endpoint", "pool", "bgp", "ipam",
                      "checksystem", "diags", "version", "config"]


@pytest.mark.parametrize("line", ["endpoint", "endpoint show --bogus", "endpoint x profile",
                                  "container add onlyname", "checksystem --frob", "diags now",
                                  "config felix", "config node loglevel", "version 2"])
def test_grammar_mismatches_print_the_usage_and_fail(ctl, line):
    rc, out = ctl(line)
    assert rc != 0 and out.startswith("Usage:"), out


def test_version(ctl):
    assert ctl("version") == (0, "0.22.0\n")


# -- endpoint show (§3.7) ---------------------------------------------------------------------

def test_endpoint_show_empty(ctl):
    assert ctl("endpoint show") == (0, SUMMARY_EMPTY)


def test_endpoint_show_summary_counts_workloads_and_endpoints(seeded):
    assert seeded("endpoint show") == (0, (
        "+----------+-----------------+---------------------+---------------------+\n"
        "| Hostname | Orchestrator ID | Number of Workloads | Number of Endpoints |\n"
        "+----------+-----------------+---------------------+---------------------+\n"
        "|  node1   |    libnetwork   |          1          |          2          |\n"
        "|  node2   |      docker     |          2          |          3          |\n"
        "|  node2   |    libnetwork   |          1          |          1          |\n"
        "+----------+-----------------+---------------------+---------------------+\n\n"))


@pytest.mark.parametrize("flags, rows", [
    ("--host=node1", [("node1", "libnetwork", "1", "2")]),
    ("--orchestrator=docker", [("node2", "docker", "2", "3")]),
    ("--host=node2 --workload=w1", [("node2", "docker", "1", "2")]),
    ("--endpoint=ep6", [("node2", "libnetwork", "1", "1")]),
    ("--host=node3", []),
])
def test_endpoint_show_filters(seeded, flags, rows):
    rc, out = seeded(f"endpoint show {flags}")
    seen = [tuple(c.strip() for c in line.strip("|").split("|"))
            for line in out.splitlines()[3:] if line.startswith("|")]
    assert rc == 0 and seen == rows, out


def test_endpoint_show_detailed(seeded):
    rc, out = seeded("endpoint show --host=node2 --orchestrator=docker --detailed")
    assert rc == 0 and out == (
        "+----------+-----------------+-------------+-------------+------------------+"
        "-------------------+----------+----------+\n"
        "| Hostname | Orchestrator ID | Workload ID | Endpoint ID |    Addresses     |"
        "        MAC        | Profiles |  State   |\n"
        "+----------+-----------------+-------------+-------------+------------------+"
        "-------------------+----------+----------+\n"
        "|  node2   |      docker     |      w1     |     ep3     | 192.168.24.5/32  |"
        " aa:bb:cc:dd:ee:ff |          |  active  |\n"
        "|          |                 |             |             | 192.168.24.10/32 |"
        "                   |          |          |\n"
        "|          |                 |             |             |   fd80::1/128    |"
        "                   |          |          |\n"
        "|  node2   |      docker     |      w1     |     ep4     |                  |"
        " aa:bb:cc:dd:ee:00 |          |  active  |\n"
        "|  node2   |      docker     |      w2     |     ep5     |                  |"
        " aa:bb:cc:dd:ee:01 |          | inactive |\n"
        "+----------+-----------------+-------------+-------------+------------------+"
        "-------------------+----------+----------+\n\n")


# -- endpoint <ID> profile … (§3.7) -----------------------------------------------------------

def test_endpoint_profile_append_set_remove_show(seeded):
    key = "/calico/v1/host/node1/workload/libnetwork/libnetwork/endpoint/ep1"
    assert seeded("endpoint ep1 profile append extra net2") == (
        0, "Profile(s) extra, net2 appended.\n\n")
    assert stored_profiles(seeded, key) == ["net1", "extra", "net2"]
    assert seeded("endpoint ep1 profile show") == (0, (
        "+-------+\n|  Name |\n+-------+\n| extra |\n|  net1 |\n|  net2 |\n+-------+\n\n"))
    assert seeded("endpoint ep1 profile append net2") == (
        0, "Profile net2 is already in endpoint profile list\n\n")
    assert seeded("endpoint ep1 profile remove extra net2") == (
        0, "Profile(s) extra,net2 removed.\n\n")
    assert stored_profiles(seeded, key) == ["net1"]
    assert seeded("endpoint ep1 profile remove net2") == (
        0, "Profile net2 is not in endpoint profile list.\n\n")
    assert seeded("endpoint ep1 profile set net2 net1 --host=node1") == (
        0, "Profile(s) set to net2, net1.\n\n")
    assert stored_profiles(seeded, key) == ["net2", "net1"]
    assert seeded("endpoint ep1 profile set") == (0, "Removed all profiles from endpoint.\n\n")
    assert seeded("endpoint ep1 profile show") == (
        0, "Endpoint has no profiles associated with it.\n")
    # the rest of the endpoint is left as it was
    stored = json.loads(seeded.etcd.read(key).value)
    assert stored["ipv4_nets"] == ["192.168.22.1/32"] and stored["mac"] == MAC


@pytest.mark.parametrize("line, rc, message", [
    ("endpoint nope profile append net1", 1,
     "Failed to append profiles to endpoint.\n\nEndpoint nope is unknown to Calico.\n\n"),
    ("endpoint nope profile show", 1,
     "Failed to list profiles in endpoint.\n\nEndpoint nope is unknown to Calico.\n\n"),
    ("endpoint nope profile set net1", 1,
     "Failed to set profiles for endpoint.\n\nEndpoint could not be found.\n\n"),
    ("endpoint nope profile remove net1", 1,
     "Failed to remove profiles from endpoint.\n\nEndpoint could not be found.\n\n"),
    ("endpoint ep1 profile append ghost", 1, "Profile with name ghost was not found.\n"),
    ("endpoint ep1 profile append extra extra", 1,
     "Profile with name extra was specified more than once.\n"),
    ("endpoint ep1 profile append bad/name", 1,
     "Profile names must be < 40 character long and can only contain numbers, letters,\n"
     "dots, dashes and underscores.\n\n"),
    ("endpoint ep1 profile append", 0, "No profile specified.\n\n"),
    ("endpoint ep1 profile remove", 0, "No profile specified.\n\n"),
], ids=["append-unknown", "show-unknown", "set-unknown", "remove-unknown", "no-such-profile",
        "twice", "bad-name", "append-none", "remove-none"])
def test_endpoint_profile_errors(seeded, line, rc, message):
    assert seeded(line) == (rc, message)


def test_endpoint_profile_needs_one_match(seeded):
    # the same endpoint ID on two hosts: the host filter decides
    put_endpoint(seeded, "node2", "libnetwork", "libnetwork", "ep1", ["192.168.22.9/32"])
    rc, out = seeded("endpoint ep1 profile append extra")
    assert rc == 1 and out == ("More than 1 endpoint matches the provided criteria.  Please "
                               "provide additional\nparameters to refine the search.\n\n")
    assert seeded("endpoint ep1 profile remove net1")[1] == (
        "More than 1 endpoint matches the provided criteria. Please provide additional "
        "parameters to refine the search.\n")
    assert seeded("endpoint ep1 profile append extra --host=node2")[0] == 0


# -- config (§3.8) ----------------------------------------------------------------------------

def test_config_felix_loglevel(ctl):
    assert ctl("config felix loglevel") == (0, "No value configured\n")
    assert ctl("config felix loglevel debug") == (0, "")
    assert ctl.etcd.read("/calico/v1/config/LogSeverityScreen").value == "debug"
    assert ctl("config felix loglevel") == (0, "debug\n")
    assert ctl("config felix loglevel --remove") == (0, "Value removed\n")
    assert ctl("config felix loglevel --remove") == (0, "No value configured\n")


def test_config_bgp_global_and_node(ctl):
    assert ctl("config bgp loglevel info") == (0, "")
    assert ctl.etcd.read("/calico/bgp/v1/global/loglevel").value == "info"
    assert ctl("config node bgp loglevel debug") == (0, "")
    assert ctl.etcd.read("/calico/bgp/v1/host/node1/loglevel").value == "debug"
    assert ctl("config node bgp loglevel") == (0, "debug\n")


@pytest.mark.parametrize("line, rc, message", [
    ("config bgp loglevel warning", 1,
     "The configuration value 'warning' is not recognized as a valid value.\n\n"
     "Use the --force option to override.\n\n"),
    ("config felix colour red", 1,
     "The configuration 'colour' is not recognized as a valid option.\n\n"
     "Use the --force option to override.\n\n"),
    ("config bgp loglevel warning --force", 0,
     "The configuration value 'warning' is not recognized as a valid value.\n\n"
     "The --force option is set.\n\n"),
    ("config felix PrometheusMetricsEnabled true --force", 0,
     "The configuration 'PrometheusMetricsEnabled' is not recognized as a valid\noption.\n\n"
     "The --force option is set.\n\n"),
], ids=["bad-value", "unknown-name", "forced-value", "forced-name"])
def test_config_validation(ctl, line, rc, message):
    assert ctl(line) == (rc, message)


def test_config_forced_values_are_stored_raw(ctl):
    ctl("config felix PrometheusMetricsEnabled true --force")
    assert ctl.etcd.read("/calico/v1/config/PrometheusMetricsEnabled").value == "true"
    rc, out = ctl("config felix ../../x y --force")
    assert rc == 1 and "may only contain letters" in out


# -- container (§3.7): what needs no node ----------------------------------------------------

@pytest.mark.parametrize("line, message", [
    ("container add c1 not-an-ip",
     "Invalid IP address specified.  Argument must be a valid IP or CIDR.\n\n"),
    ("container add c1 10.9.0.0/24",
     "Invalid CIDR specified for desired pool. No pool found for 10.9.0.0/24.\n\n"),
    ("container c1 ip add 192.168.30.5/24",
     "Invalid CIDR specified for desired pool. No pool found for 192.168.30.5/24.\n\n"),
    ("container add c1 ipv4 --interface=bad;name",
     "Invalid interface name specified: bad;name\n\n"),
    ("container c1 profile append bad/name",
     "Profile names must be < 40 character long and can only contain numbers, letters,\n"
     "dots, dashes and underscores.\n\n"),
])
def test_container_argument_checks(ctl, line, message):
    ctl.etcd.write("/calico/v1/ipam/v4/pool/192.168.30.0-24", json.dumps({"cidr": "192.168.30.0/24"}))
    assert ctl(line) == (1, message)


def test_container_without_docker(ctl):
    assert ctl("container add c1 ipv4") == (
        1, "Unable to run docker commands. Is the docker daemon running?\n\n")
    assert ctl("container c1 endpoint show")[0] == 1


# -- checksystem (§3.8) -----------------------------------------------------------------------

def test_module_detection_sources():
    def view(**kw):
        return checksystem.KernelView(**kw)
    assert checksystem.module_available(
        view(modules_dep=("kernel/net/netfilter/xt_set.ko: kernel/net/netfilter/ipset/ip_set.ko",)),
        "xt_set", "CONFIG_NETFILTER_XT_SET")
    assert checksystem.module_available(
        view(modules_builtin=("kernel/net/ipv6/netfilter/ip6_tables.ko",)), "ip6_tables", "X")
    assert checksystem.module_available(view(loaded="ipip 16384 0 - Live 0x0\n"), "ipip", "X")
    assert checksystem.module_available(view(config="CONFIG_NET_IPIP=y\n"), "ipip",
                                        "CONFIG_NET_IPIP")
    # =m is a module that must be installed (modules.dep) to count; "not set" is missing
    assert not checksystem.module_available(view(config="CONFIG_NET_IPIP=m\n"), "ipip",
                                            "CONFIG_NET_IPIP")
    assert not checksystem.module_available(view(config="# CONFIG_NET_IPIP is not set\n"),
                                            "ipip", "CONFIG_NET_IPIP")
    assert checksystem.module_available(view(sys_modules=frozenset({"ipip"})), "ipip", "X")


def test_check_modules_messages(capsys):
    assert not checksystem.check_modules(checksystem.KernelView(config="CONFIG_IP6_NF_IPTABLES=y\n"))
    assert capsys.readouterr().err == (
        "WARNING: Unable to detect the xt_set module as available or builtin.\n")
    assert not checksystem.check_modules(checksystem.KernelView())
    assert capsys.readouterr().err.startswith("ERROR: Could not check for loaded modules")


def test_ipip_fails_only_with_an_ipip_pool(capsys):
    none = checksystem.KernelView(config="# CONFIG_NET_IPIP is not set\n")
    assert checksystem.check_ipip(none, [])
    assert capsys.readouterr().err == (
        "WARNING: Unable to detect the ipip module as available or builtin.\n")
    assert not checksystem.check_ipip(none, ["192.168.21.0/24"])
    assert "ERROR: IP-in-IP is enabled on pool(s) 192.168.21.0/24" in capsys.readouterr().err
    assert checksystem.check_ipip(checksystem.KernelView(config="CONFIG_NET_IPIP=y\n"),
                                  ["192.168.21.0/24"])


@pytest.mark.parametrize("release, problem", [
    ("6.18.44-fc-v1045", None), ("3.19.0a-dev", None), ("4.5-rc3", None),
    ("2.6.18-400.el5", "Minimum kernel version to run Calico is 2.6.24.\n"
                       "Detected kernel version: 2.6.18"),
    ("linux", "ERROR: The kernel version does not match expected semantic versioning."),
])
def test_kernel_version(release, problem):
    assert checksystem.kernel_problem(release) == problem


@pytest.mark.parametrize("raw, problem", [
    ('{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}', None),
    ("etcd 2.0.11", None),
    ("etcd 2.0.9", "ERROR: etcd must be at least version 2.0.10 (Detected version: 2.0.9)"),
    ("teapot", "ERROR: Unable to detect etcd version. If using etcd with SSL, set ETCD_SCHEME, "
               "ETCD_KEY_FILE, ETCD_CERT_FILE, and ETCD_CA_CERT_FILE environment variables"),
])
def test_etcd_version(raw, problem):
    assert checksystem.etcd_version_problem(raw) == problem


def test_normalize_version():
    assert checksystem.normalize_version("1.21.0") == [1, 21]
    assert checksystem.normalize_version("1.41") > checksystem.normalize_version("1.21")


def test_checksystem_on_this_machine(ctl):
    """No Docker here (DOCKER_HOST points nowhere); etcd answers; the kernel is what it is."""
    rc, out = ctl("checksystem --fix")
    assert rc == 1
    assert "WARNING: Deprecated flag --fix: checksystem no longer fixes detected issues" in out
    assert "ERROR: Docker daemon not running." in out
    assert "etcd" not in out
    if not ipip_supported():
        # this VM's kernel has no IPIP: said plainly, and a failure once an --ipip pool exists
        assert "WARNING: Unable to detect the ipip module as available or builtin." in out
        assert ctl("checksystem --runtime=rkt")[0] == 0
        ctl.etcd.write("/calico/v1/ipam/v4/pool/192.168.21.0-24",
                       json.dumps({"cidr": "192.168.21.0/24", "ipip": "tunl0"}))
        rc, out = ctl("checksystem --runtime=rkt")
        assert rc == 1 and "ERROR: IP-in-IP is enabled on pool(s) 192.168.21.0/24" in out


def test_checksystem_runtime_and_etcd_errors(ctl, monkeypatch):
    assert ctl("checksystem --runtime=lxc") == (1, "Invalid runtime specified: 'lxc'\n")
    monkeypatch.setenv("ETCD_AUTHORITY", "127.0.0.1:1")
    rc, out = ctl("checksystem --runtime=rkt")
    assert rc == 1 and "ERROR: Could not connect to etcd at 127.0.0.1:1: " in out


# -- diags (§3.8) -----------------------------------------------------------------------------

def test_diags_file_names_follow_0_22():
    assert diags.file_name("ip -4 route") == "ip_-4_route"
    assert diags.file_name("ipset list || docker run --privileged calico/node ipset list") == \
        "ipset_list"
    assert diags.file_name("journalctl -u calico-node.service --no-pager") == \
        "journalctl_-u_calico-nodeservice_--no-pager"


def test_diags_bundle(ctl, tmp_path):
    (tmp_path / "felix").mkdir()
    (tmp_path / "felix" / "current").write_text("felix log line\n")
    (tmp_path / "lock").write_text("")
    ctl.etcd.write("/calico/v1/Ready", "true")
    rc, out = ctl(f"diags --log-dir={tmp_path}")
    assert rc == 0 and out.startswith("Collecting diagnostics\nUsing temp dir: ")
    path = re.search(r"^Diags saved to (\S+diags-\d{6}_\d{6}\.tar\.gz)$", out, re.M).group(1)
    assert "transfer.sh" not in out
    try:
        with tarfile.open(path) as tar:
            names = set(tar.getnames())
            assert all(n.startswith("diagnostics") for n in names), sorted(names)
            for name in ("ip_-4_route", "ip_link", "iptables-save", "ipset_list", "etcd_calico",
                         "bird_protocols", "docker_logs_calico-node",
                         "logs/felix/current"):
                assert f"diagnostics/{name}" in names, sorted(names)
            assert "diagnostics/logs/lock" not in names
            dump = tar.extractfile("diagnostics/etcd_calico").read().decode()
    finally:
        for root, dirs, files in os.walk(os.path.dirname(path), topdown=False):
            for f in files:
                os.unlink(os.path.join(root, f))
            for d in dirs:
                os.rmdir(os.path.join(root, d))
        os.rmdir(os.path.dirname(path))
    assert dump.startswith("dir?, key, value\nDIR,  /calico,\n")
    assert "FILE, /calico/v1/Ready, true\n" in dump


# -- containerns: the default-route metric bump (libcalico increment_metrics) -----------------

def test_metric_changes():
    assert containerns.metric_changes(["10.0.0.0/24 dev eth0 scope link"]) == []
    assert containerns.metric_changes(["default via 10.0.0.1 dev eth0 metric 5"]) == []
    changes = containerns.metric_changes([
        "default via 172.17.0.1 dev eth0 ", "default via 10.1.0.1 dev eth2 metric 1",
        "172.17.0.0/16 dev eth0 proto kernel scope link src 172.17.0.2"])
    assert [(r.argv(), m) for r, m in changes] == [
        (["default", "via", "10.1.0.1", "dev", "eth2", "metric", "1"], 2),
        (["default", "via", "172.17.0.1", "dev", "eth0", "metric", "0"], 1)]
