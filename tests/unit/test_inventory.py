"""Unit tests for lab.inventory: the three file formats, every validation rule, the model.

Every case writes a real file into tmp_path and loads it from there (the test chdirs into
tmp_path, so messages name the file exactly as the user would see it)."""

import copy
import json
import os
import re
from pathlib import Path

import pytest
import yaml

from lab.errors import LabError
from lab.inventory import (InventoryError, Inventory, dump_inventory, load_inventory, secrets,
                           to_topology)
from lab.topology import ROLE_CALICO_NODE, ROLE_ROUTE_REFLECTOR
from tests.unit.test_topology import DELETE, mutate  # dotted key paths, as in the messages

EXAMPLES = Path(__file__).resolve().parents[2] / "lab" / "inventories"

BASE = {
    "name": "lab",
    "ssh": {"user": "root", "port": 22},
    "etcd": {"endpoints": ["http://192.168.20.1:2379"], "host": "node1"},
    "hosts": {
        "node1": {"address": "192.168.20.1"},
        "node2": {"address": "192.168.20.2", "as_num": 64512},
    },
}


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def native(changes=None, file="lab.yaml"):
    data = copy.deepcopy(BASE)
    for path, value in (changes or {}).items():
        mutate(data, path, value)
    Path(file).write_text(yaml.safe_dump(data, sort_keys=False))
    return load_inventory(file)


def write(file, text):
    Path(file).write_text(text)
    return file


def error(load, *args):
    with pytest.raises(InventoryError) as info:
        load(*args)
    message = str(info.value)
    assert "\n" not in message
    assert isinstance(info.value, LabError)
    return message


# --------------------------------------------------------------------------- native: valid


def test_defaults_filled_in():
    inv = native({"name": DELETE, "ssh": DELETE})
    assert inv.name == "lab"  # the file's stem
    node1 = inv.host("node1")
    assert node1.ip == "192.168.20.1" and node1.roles == (ROLE_CALICO_NODE,) and node1.as_num is None
    assert node1.docker_url == "ssh://root@192.168.20.1:22"
    ssh = node1.ssh
    assert (ssh.user, ssh.port, ssh.key_file, ssh.host_key_policy, ssh.sudo) == ("root", 22, None, "verify", False)
    assert (ssh.connect_timeout, ssh.command_timeout) == (10.0, 60.0)
    assert ssh.known_hosts == str(Path.home() / ".ssh" / "known_hosts")
    assert (ssh.password, ssh.sudo_password) == (None, None)
    assert inv.etcd.scheme == "http" and inv.etcd.url == "http://192.168.20.1:2379"
    assert inv.etcd.authority == "192.168.20.1:2379" and inv.etcd.host == "node1"
    assert inv.node_names == ("node1", "node2")


def test_host_overrides_ssh_defaults():
    inv = native({"ssh.sudo": True, "ssh.connect_timeout": 3, "hosts.node2.user": "admin",
                  "hosts.node2.port": 2222, "hosts.node2.sudo": False})
    assert inv.host("node1").ssh.sudo is True and inv.host("node1").ssh.connect_timeout == 3.0
    node2 = inv.host("node2")
    assert (node2.ssh.user, node2.ssh.port, node2.ssh.sudo, node2.ssh.connect_timeout) == ("admin", 2222, False, 3.0)
    assert node2.docker_url == "ssh://admin@192.168.20.2:2222"


def test_paths_expand_home_and_are_relative_to_the_inventory(tmp_path):
    Path("sub").mkdir()
    inv = native({"ssh.key_file": "keys/id", "hosts.node2.known_hosts": "~/kh"}, file="sub/lab.yaml")
    assert inv.host("node1").ssh.key_file == str(tmp_path / "sub" / "keys" / "id")
    assert inv.host("node2").ssh.known_hosts == str(tmp_path / "home" / "kh")


def test_dns_address_ipv6_and_docker_url():
    inv = native({"hosts.node1": {"address": "node1.lab.example", "ip": "192.168.20.1"},
                  "hosts.node2": {"address": "fd00::2", "ip": "192.168.20.2", "port": 2200},
                  "hosts.node3": {"address": "192.168.20.3", "docker_url": "tcp://192.168.20.3:2375"}})
    assert inv.host("node1").docker_url == "ssh://root@node1.lab.example:22"
    assert inv.host("node2").docker_url == "ssh://root@[fd00::2]:2200"
    assert inv.host("node3").docker_url == "tcp://192.168.20.3:2375"


def test_roles_in_one_order():
    inv = native({"hosts.node2.roles": [ROLE_ROUTE_REFLECTOR, ROLE_CALICO_NODE]})
    assert inv.host("node2").roles == (ROLE_CALICO_NODE, ROLE_ROUTE_REFLECTOR)


def test_https_etcd_with_tls_files():
    for name in ("ca.pem", "cert.pem", "key.pem"):
        Path(name).write_text("x")
    inv = native({"etcd": {"endpoints": ["https://etcd.lab.example:2379", "https://[fd00::1]:2379/"],
                           "ca_file": "ca.pem", "cert_file": "cert.pem", "key_file": "key.pem"}})
    assert inv.etcd.scheme == "https" and inv.etcd.host is None
    assert inv.etcd.endpoints == ("https://etcd.lab.example:2379", "https://[fd00::1]:2379")
    assert inv.etcd.authority == "etcd.lab.example:2379"
    assert inv.etcd.ca_file == str(Path.cwd() / "ca.pem")


# --------------------------------------------------------------------------- native: errors

NATIVE_CASES = [
    ("no-hosts", {"hosts": {}}, "defines no hosts (at least one is needed)"),
    ("bad-port", {"hosts.node2.port": "ssh"}, "host node2: key 'port': expected an integer, got 'ssh' (a string)"),
    ("port-range", {"hosts.node2.port": 70000}, "host node2: key 'port': 70000 is out of range 1..65535"),
    ("default-port", {"ssh.port": 0}, "key 'ssh.port': 0 is out of range 1..65535"),
    ("unknown-host-key", {"hosts.node2.prot": 22},
     "host node2: key 'prot': unknown key, did you mean 'port'? (allowed: address, ip, roles, as_num, "
     "docker_url, user, port, key_file, known_hosts, host_key_policy, sudo, connect_timeout, "
     "command_timeout, password, sudo_password)"),
    ("unknown-ssh-key", {"ssh.usr": "x"}, "key 'ssh.usr': unknown key, did you mean 'user'?"),
    ("unknown-top-key", {"etdc": {}}, "key 'etdc': unknown key, did you mean 'etcd'? (allowed: version, name, ssh, etcd, hosts)"),
    ("unknown-no-suggestion", {"hosts.node1.zzz": 1}, "host node1: key 'zzz': unknown key (allowed: address,"),
    ("duplicate-ip", {"hosts.node2.ip": "192.168.20.1"}, "host node2: key 'ip': 192.168.20.1 is already the ip of host node1"),
    ("tls-with-http", {"etcd.ca_file": "ca.pem"}, "key 'etcd.ca_file': is only for https endpoints (etcd.endpoints use http)"),
    ("cert-without-key", {"etcd": {"endpoints": ["https://192.168.20.1:2379"], "cert_file": "c.pem"}},
     "key 'etcd.cert_file': needs etcd.key_file too (a client certificate goes with its key)"),
    ("key-without-cert", {"etcd": {"endpoints": ["https://192.168.20.1:2379"], "key_file": "k.pem"}},
     "key 'etcd.key_file': needs etcd.cert_file too"),
    ("missing-tls-file", {"etcd": {"endpoints": ["https://192.168.20.1:2379"], "ca_file": "ca.pem"}},
     "key 'etcd.ca_file': no such file: {cwd}/ca.pem"),
    ("bad-policy", {"hosts.node2.host_key_policy": "trust"},
     "host node2: key 'host_key_policy': 'trust' is not one of: verify, trust-on-first-use"),
    ("etcd-host-unknown", {"etcd.host": "node9"}, "key 'etcd.host': unknown host 'node9' (hosts: node1, node2)"),
    ("etcd-host-type", {"etcd.host": ["node1"]}, "key 'etcd.host': expected a string, got a list"),
    ("no-endpoints", {"etcd.endpoints": DELETE}, "key 'etcd.endpoints': is required: one or more etcd URLs"),
    ("empty-endpoints", {"etcd.endpoints": []}, "key 'etcd.endpoints': must list at least one etcd URL"),
    ("endpoints-not-list", {"etcd.endpoints": "http://192.168.20.1:2379"}, "key 'etcd.endpoints': expected a list, got"),
    ("endpoint-no-port", {"etcd.endpoints": ["http://192.168.20.1"]},
     "key 'etcd.endpoints[0]': 'http://192.168.20.1' is not an etcd endpoint like http://192.168.20.1:2379"),
    ("endpoint-scheme", {"etcd.endpoints": ["etcd://192.168.20.1:2379"]}, "key 'etcd.endpoints[0]': 'etcd://"),
    ("endpoint-path", {"etcd.endpoints": ["http://192.168.20.1:2379/v2"]}, "key 'etcd.endpoints[0]': 'http://192.168.20.1:2379/v2' is not"),
    ("mixed-schemes", {"etcd.endpoints": ["http://192.168.20.1:2379", "https://192.168.20.2:2379"]},
     "key 'etcd.endpoints[1]': uses https but the first endpoint uses http: all endpoints must use one scheme"),
    ("endpoint-twice", {"etcd.endpoints": ["http://192.168.20.1:2379", "http://192.168.20.1:2379/"]},
     "key 'etcd.endpoints[1]': http://192.168.20.1:2379 is listed twice"),
    ("missing-address", {"hosts.node2.address": DELETE}, "host node2: key 'address': is required"),
    ("bad-address", {"hosts.node2.address": "node 2"}, "host node2: key 'address': 'node 2' is not an IP address or DNS name"),
    ("dns-needs-ip", {"hosts.node2.address": "node2.lab.example"},
     "host node2: key 'ip': is required: address node2.lab.example is not an IPv4 address"),
    ("ip-not-ipv4", {"hosts.node2.ip": "fd00::2"}, "host node2: key 'ip': 'fd00::2' is not an IPv4 address"),
    ("host-name", {"hosts.Node_3": {"address": "192.168.20.3"}}, "key 'hosts': 'Node_3' is not a valid host name"),
    ("host-not-mapping", {"hosts.node3": None}, "host node3: expected a mapping with at least an address, got null"),
    ("hosts-not-mapping", {"hosts": ["node1"]}, "key 'hosts': expected a mapping, got a list"),
    ("lab-name", {"name": "Lab East"}, "key 'name': 'Lab East' is not a valid lab name"),
    ("version", {"version": 2}, "key 'version': 2 is not supported (this suite reads 1)"),
    ("bad-role", {"hosts.node2.roles": ["bgp"]}, "host node2: key 'roles[0]': 'bgp' is not one of: calico-node, route-reflector"),
    ("no-roles", {"hosts.node2.roles": []}, "host node2: key 'roles': must not be empty"),
    ("role-twice", {"hosts.node2.roles": [ROLE_CALICO_NODE, ROLE_CALICO_NODE]}, "host node2: key 'roles': lists a role twice"),
    ("as-num", {"hosts.node2.as_num": 0}, "host node2: key 'as_num': 0 is out of range 1..4294967295"),
    ("sudo-type", {"hosts.node2.sudo": "yes please"}, "host node2: key 'sudo': expected true or false, got 'yes please' (a string)"),
    ("timeout", {"ssh.command_timeout": 0}, "key 'ssh.command_timeout': expected a number of seconds > 0, got 0 (an integer)"),
    ("timeout-bool", {"hosts.node1.connect_timeout": True}, "host node1: key 'connect_timeout': expected a number of seconds > 0"),
    ("docker-url", {"hosts.node1.docker_url": "192.168.20.1:2375"}, "host node1: key 'docker_url': '192.168.20.1:2375' is not a Docker URL"),
    ("empty-user", {"ssh.user": " "}, "key 'ssh.user': must not be empty"),
]


@pytest.mark.parametrize("changes, expected", [case[1:] for case in NATIVE_CASES],
                         ids=[case[0] for case in NATIVE_CASES])
def test_native_errors(changes, expected):
    message = error(native, changes)
    assert message.startswith("inventory lab.yaml: " + expected.format(cwd=Path.cwd()))


def test_file_name_must_make_a_valid_lab_name():
    message = error(native, {"name": DELETE}, "Lab_East.yaml")
    assert message == ("inventory Lab_East.yaml: key 'name': is required: the file name 'Lab_East' is "
                       "not a valid lab name (must match [a-z0-9][a-z0-9-]*)")


def test_secret_of_wrong_type_is_not_echoed():
    message = error(native, {"hosts.node1.password": 987654})
    assert message == "inventory lab.yaml: host node1: key 'password': expected a non-empty string (quote it in YAML)"


def test_duplicate_key_names_line():
    text = "hosts:\n  node1:\n    address: 192.168.20.1\n    port: 22\n    port: 2222\netcd: {endpoints: [http://192.168.20.1:2379]}\n"
    message = error(load_inventory, write("lab.yaml", text))
    assert message == "inventory lab.yaml: line 5, column 5: not valid YAML: duplicate key 'port'"


def test_yaml_syntax_error_names_line():
    text = "hosts:\n  node1:\n    address: [192.168.20.1\netcd: {}\n"
    message = error(load_inventory, write("lab.yaml", text))
    assert re.fullmatch(r"inventory lab\.yaml: line 4, column \d+: not valid YAML: .+", message), message


def test_missing_file():
    assert error(load_inventory, "nope.yaml") == "inventory nope.yaml: no such file"


def test_empty_yaml_file():
    assert error(load_inventory, write("lab.yaml", "")) == "inventory lab.yaml: defines no hosts (at least one is needed)"


# --------------------------------------------------------------------------- the three formats


def test_examples_load_equal():
    yaml_inv = load_inventory(EXAMPLES / "example.yaml")
    assert yaml_inv == load_inventory(EXAMPLES / "example-ansible.yaml")
    assert yaml_inv == load_inventory(EXAMPLES / "example.ini")
    assert yaml_inv.name == "example" and yaml_inv.node_names == ("node1", "node2", "rr1")
    node2 = yaml_inv.host("node2")
    assert (node2.ssh.user, node2.ssh.port, node2.ssh.sudo, node2.as_num) == ("admin", 2222, True, 64512)
    assert yaml_inv.host("rr1").roles == (ROLE_ROUTE_REFLECTOR,)
    assert yaml_inv.etcd.host == "node1"


ANSIBLE_YAML = """\
all:
  vars:
    calab_etcd_endpoints: [http://10.0.0.1:2379, http://10.0.0.2:2379]
    ansible_user: allvars
    ansible_port: 2201
    calab_command_timeout: 30
    ansible_python_interpreter: /usr/bin/python3   # not ours: ignored
    site_colour: blue                              # the user's own: ignored
  hosts:
    lone:
      ansible_host: 10.0.0.9
  children:
    calico_nodes:
      vars:
        ansible_user: parent
        ansible_port: 2202
      hosts:
        n1: {ansible_host: 10.0.0.1}
      children:
        deep:
          vars: {ansible_user: child}
          hosts:
            n2: {ansible_host: 10.0.0.2, ansible_user: own}
            n3: {ansible_host: 10.0.0.3}
    aaa:
      vars: {calab_connect_timeout: 5, ansible_port: 2203}
      hosts: {n3: }
    zzz:
      vars: {calab_connect_timeout: 7}
      hosts: {n3: }
    route_reflectors:
      hosts: {n3: , rr: {ansible_host: 10.0.0.4}}
    etcd:
      hosts: {n1: }
"""


def test_ansible_precedence_and_roles():
    inv = load_inventory(write("site.yml", ANSIBLE_YAML))
    assert inv.name == "site" and inv.node_names == ("lone", "n1", "n2", "n3", "rr")
    # host vars > child group > parent group > all; same depth: later name wins (zzz > aaa)
    users = {h.name: h.ssh.user for h in inv.hosts}
    assert users == {"lone": "allvars", "n1": "parent", "n2": "own", "n3": "child", "rr": "allvars"}
    assert inv.host("n3").ssh.connect_timeout == 7.0
    assert inv.host("n3").ssh.port == 2202  # calico_nodes beats aaa: same depth, later by name
    assert inv.host("n1").ssh.port == 2202 and inv.host("lone").ssh.port == 2201
    assert {h.ssh.command_timeout for h in inv.hosts} == {30.0}
    assert inv.host("n3").roles == (ROLE_CALICO_NODE, ROLE_ROUTE_REFLECTOR)
    assert inv.host("rr").roles == (ROLE_ROUTE_REFLECTOR,)
    assert inv.host("lone").roles == (ROLE_CALICO_NODE,)  # in no role group
    assert inv.etcd.host == "n1" and inv.etcd.endpoints == ("http://10.0.0.1:2379", "http://10.0.0.2:2379")


ANSIBLE_INI = """\
# comment
lone ansible_host=10.0.0.9

[all:vars]
calab_etcd_endpoints = http://10.0.0.1:2379, http://10.0.0.2:2379
ansible_user=allvars
ansible_password="all secret"

[calico_nodes]
n1 ansible_host=10.0.0.1 ansible_become=yes ansible_become_password='s3 cret'  # inline comment
n2 ansible_host=10.0.0.2 ansible_become=0 calab_as_num=64512

[calico_nodes:vars]
ansible_user=parent
calab_connect_timeout=2.5

[deep]
n2 ansible_user=own

[calico_nodes:children]
deep

[etcd]
n1
"""


def test_ansible_ini_values_and_precedence():
    inv = load_inventory(write("hosts", ANSIBLE_INI))  # no extension: [headers] make it INI
    n1, n2, lone = inv.host("n1"), inv.host("n2"), inv.host("lone")
    assert (n1.ssh.user, n2.ssh.user, lone.ssh.user) == ("parent", "own", "allvars")
    assert (n1.ssh.sudo, n2.ssh.sudo, lone.ssh.sudo) == (True, False, False)
    assert n1.ssh.sudo_password == "s3 cret" and lone.ssh.password == "all secret"
    assert n2.as_num == 64512 and n1.ssh.connect_timeout == 2.5 and lone.ssh.connect_timeout == 10.0
    assert inv.etcd.endpoints == ("http://10.0.0.1:2379", "http://10.0.0.2:2379") and inv.etcd.host == "n1"
    assert lone.roles == (ROLE_CALICO_NODE,)


def test_ini_content_in_a_yaml_file_is_detected():
    text = "[calico_nodes]\nn1 ansible_host=10.0.0.1\n\n[all:vars]\ncalab_etcd_endpoints=http://10.0.0.1:2379\n"
    assert load_inventory(write("lab.yaml", text)).node_names == ("n1",)


INI_HEAD = "[all:vars]\ncalab_etcd_endpoints=http://10.0.0.1:2379\n[calico_nodes]\nn1 ansible_host=10.0.0.1\n"

INI_CASES = [
    ("bad-port", "n2 ansible_host=10.0.0.2 ansible_port=ssh\n",
     "line 5: host n2: key 'ansible_port': expected an integer, got 'ssh' (a string)"),
    ("bad-bool", "[calico_nodes:vars]\nansible_become=maybe\n",
     "line 6: group calico_nodes: key 'ansible_become': expected one of true, yes, on, 1, false, no, off, 0, got 'maybe'"),
    ("unknown-calab", "n2 ansible_host=10.0.0.2 calab_ipp=10.0.0.2\n",
     "line 5: host n2: key 'calab_ipp': unknown calab_ variable, did you mean 'calab_ip'?"),
    ("lab-wide-on-host", "n2 ansible_host=10.0.0.2 calab_name=x\n",
     "line 5: host n2: key 'calab_name': is a lab-wide setting: set it in the vars of all or of a group"),
    ("not-key-value", "n2 ansible_host=10.0.0.2 oops\n", "line 5: host n2: expected key=value, got 'oops'"),
    ("duplicate-host-var", "n2 ansible_port=1 ansible_port=2\n", "line 5: host n2: key 'ansible_port': duplicate key (already set at line 5: host n2)"),
    ("duplicate-group-var", "[x:vars]\na=1\nb=2\na=3\n", "line 8: group x: key 'a': duplicate key (already set at line 6: group x)"),
    ("vars-not-key-value", "[x:vars]\njust words\n", "line 6: group x: expected key=value, got 'just words'"),
    ("section-type", "[x:hostz]\n", "line 5: unknown section type :hostz (expected [x], [x:vars] or [x:children])"),
    ("bad-header", "[x y]\n", "line 5: '[x y]' is not a section header like [group], [group:vars] or [group:children]"),
    ("unclosed-quote", "n2 ansible_password='abc\n", "line 5: cannot split"),
    ("host-name", "Node_2 ansible_host=10.0.0.2\n", "line 5: 'Node_2' is not a valid host name"),
    ("aliases-clash", "n2 ansible_host=10.0.0.2 ansible_user=a ansible_ssh_user=b\n",
     "line 5: host n2: key 'ansible_ssh_user': sets the same thing as 'ansible_user' (line 5: host n2); keep one"),
    ("dns-needs-ip", "n2 ansible_host=n2.lab.example\n", "host n2: key 'calab_ip': is required: address n2.lab.example"),
    ("duplicate-ip", "n2 ansible_host=10.0.0.1\n", "host n2: key 'calab_ip': 10.0.0.1 is already the ip of host n1"),
    ("two-etcd-hosts", "n2 ansible_host=10.0.0.2\n[etcd]\nn1\nn2\n",
     "group etcd: has 2 hosts (n1, n2); it names the one host that runs etcd"),
    ("cycle", "[a:children]\nb\n[b:children]\na\n", "group a: is its own descendant: a -> b -> a"),
    ("tls-with-http", "[all:vars]\ncalab_etcd_ca_file=ca.pem\n",
     "line 6: group all: key 'calab_etcd_ca_file': is only for https endpoints (calab_etcd_endpoints use http)"),
]


@pytest.mark.parametrize("tail, expected", [case[1:] for case in INI_CASES], ids=[case[0] for case in INI_CASES])
def test_ini_errors(tail, expected):
    message = error(load_inventory, write("lab.ini", INI_HEAD + tail))
    assert message.startswith("inventory lab.ini: " + expected), message


def test_ini_needs_endpoints():
    message = error(load_inventory, write("lab.ini", "[calico_nodes]\nn1 ansible_host=10.0.0.1\n"))
    assert message == ("inventory lab.ini: key 'calab_etcd_endpoints': is required: one or more etcd URLs "
                       "like http://192.168.20.1:2379")


def test_ini_https_needs_existing_tls_files():
    text = INI_HEAD.replace("http://", "https://") + "[all:vars]\ncalab_etcd_cert_file=c.pem\ncalab_etcd_key_file=k.pem\n"
    message = error(load_inventory, write("lab.ini", text))
    assert message == f"inventory lab.ini: line 6: group all: key 'calab_etcd_cert_file': no such file: {Path.cwd()}/c.pem"


ANSIBLE_YAML_CASES = [
    ("group-key", {"all": {"host": {}}}, "group all: key 'host': unknown key, did you mean 'hosts'? (allowed: hosts, vars, children)"),
    ("unknown-calab", {"all": {"vars": {"calab_etcd_endpoint": []}}},
     "group all: key 'calab_etcd_endpoint': unknown calab_ variable, did you mean 'calab_etcd_endpoints'?"),
    ("bad-policy", {"all": {"hosts": {"n1": {"ansible_host": "10.0.0.1", "calab_host_key_policy": "never"}}}},
     "host n1: key 'calab_host_key_policy': 'never' is not one of: verify, trust-on-first-use"),
    ("become-string", {"all": {"hosts": {"n1": {"ansible_host": "10.0.0.1", "ansible_become": "yes"}}}},
     "host n1: key 'ansible_become': expected true or false, got 'yes' (a string)"),
    ("hosts-list", {"all": {"hosts": ["n1"]}}, "group all: key 'hosts': expected a mapping, got a list"),
    ("no-hosts", {"all": {"vars": {"calab_etcd_endpoints": ["http://10.0.0.1:2379"]}}}, "defines no hosts"),
]


@pytest.mark.parametrize("data, expected", [case[1:] for case in ANSIBLE_YAML_CASES],
                         ids=[case[0] for case in ANSIBLE_YAML_CASES])
def test_ansible_yaml_errors(data, expected):
    message = error(load_inventory, write("lab.yml", yaml.safe_dump(data)))
    assert message.startswith("inventory lab.yml: " + expected), message


# --------------------------------------------------------------------------- the model

SECRET = {"hosts.node1.password": "pw-one-8c1f", "ssh.sudo_password": "sudo-pw-77ab"}


def test_to_dict_from_dict_round_trip_with_secrets():
    inv = native(SECRET)
    data = json.loads(json.dumps(inv.to_dict()))
    again = Inventory.from_dict(data)
    assert again == inv and again.source == inv.source == "lab.yaml"
    assert again.host("node1").ssh.password == "pw-one-8c1f"


def test_secrets_never_in_repr_or_redacted():
    inv = native(SECRET)
    assert secrets(inv) == ["pw-one-8c1f", "sudo-pw-77ab"]
    shown = [repr(inv), str(inv), json.dumps(inv.redacted()), dump_inventory(inv)]
    for text in shown:
        for secret in secrets(inv):
            assert secret not in text
    redacted = inv.redacted()
    assert redacted["hosts"][0]["ssh"]["password"] == "***"
    assert redacted["hosts"][1]["ssh"]["password"] is None  # not set: nothing to hide
    assert redacted["hosts"][1]["ssh"]["sudo_password"] == "***"
    assert "left out" in dump_inventory(inv)


def test_dump_loads_back_equal():
    for source in ("example.yaml", "example-ansible.yaml", "example.ini"):
        inv = load_inventory(EXAMPLES / source)
        assert load_inventory(write("dumped.yaml", dump_inventory(inv))) == inv
    inv = native({**SECRET, "hosts.node2.key_file": "/k", "hosts.node2.docker_url": "tcp://h:1"})
    text = dump_inventory(inv, include_secrets=True)
    assert text.startswith("# Inventory of a real lab")
    assert load_inventory(write("lab.yaml", text)) == inv


def test_unknown_host():
    inv = native()
    message = error(inv.host, "node9")
    assert message == "inventory lab.yaml: unknown host 'node9' (hosts: node1, node2)"


def test_to_topology():
    inv = native({"hosts.node2.roles": [ROLE_CALICO_NODE, ROLE_ROUTE_REFLECTOR]})
    topo = to_topology(inv)
    assert topo.name == "lab" and topo.node_names == ("node1", "node2")
    assert topo.node("node2").roles == (ROLE_CALICO_NODE, ROLE_ROUTE_REFLECTOR)
    assert topo.node("node2").as_num == 64512 and topo.node("node1").ip == "192.168.20.1"
    assert topo.etcd.node == "node1" and topo.etcd_authority == inv.etcd.authority == "192.168.20.1:2379"
    assert topo.bgp.mode == "mesh" and not (topo.pools or topo.networks or topo.profiles or topo.workloads)
    assert json.loads(json.dumps(topo.to_dict()))["management"] == {"name": "operator", "ip": "0.0.0.0"}


def test_to_topology_finds_etcd_host_by_endpoint():
    inv = native({"etcd.host": DELETE, "etcd.endpoints": ["http://192.168.20.2:4001"]})
    topo = to_topology(inv)
    assert (topo.etcd.node, topo.etcd.port, topo.etcd_authority) == ("node2", 4001, "192.168.20.2:4001")
    inv = native({"etcd.host": DELETE, "etcd.endpoints": ["http://etcd.lab.example:2379"]})
    assert to_topology(inv).etcd.node == "node1"  # no host matches: the first one
