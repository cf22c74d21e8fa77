"""Calico IPAM v2 of the reference node against a real etcd (spec §1.7)."""
from __future__ import annotations

import ipaddress
import json
import threading
from collections import Counter

import etcd
import pytest

from lab.calico import model
from lab.calico.datastore import Datastore
from lab.calico.ipam import (AlreadyAssignedError, Ipam, NoAddressesError, NoHostAffinityError,
                             PoolNotFoundError, _random_subnets_from_cidrs, py2_str_hash)

NULL_ATTR = {"handle_id": None, "secondary": None}
EMPTY_ATTR = {"handle_id": None, "secondary": {}}


@pytest.fixture
def ds(etcd_client) -> Datastore:
    return Datastore(etcd_client)


@pytest.fixture
def ipam(ds) -> Ipam:
    return Ipam(ds)


def block(client, cidr: str) -> dict:
    key = f"/calico/ipam/v2/assignment/ipv4/block/{cidr.replace('/', '-')}"
    return json.loads(client.read(key).value)


def has_key(client, key: str) -> bool:
    try:
        client.read(key)
        return True
    except etcd.EtcdKeyNotFound:
        return False


def marker(host: str, cidr: str) -> str:
    return f"/calico/ipam/v2/host/{host}/ipv4/block/{cidr.replace('/', '-')}"


def block_of(ip: str) -> str:
    return str(ipaddress.ip_network(f"{ip}/26", strict=False))


# -- the hostname-seeded block order (libcalico on Python 2.7) -----------------------------------
# Expected values were produced by CPython 2.7.18 running libcalico's _random_subnets_from_cidr(s)
# (netaddr replaced by integer arithmetic; every call on the random module unchanged).

def test_python2_string_hash():
    assert py2_str_hash("calico-01") == 7219917682325325940
    assert py2_str_hash("node1") == 5990530763760513144
    assert py2_str_hash("a") == 12416037344
    assert py2_str_hash("") == 0


@pytest.mark.parametrize("host, pools, expected", [
    ("calico-01", ["192.168.0.0/16"], ["192.168.142.0/26", "192.168.156.192/26",
                                       "192.168.171.128/26", "192.168.186.64/26",
                                       "192.168.201.0/26"]),
    ("calico-02", ["192.168.0.0/16"], ["192.168.9.128/26", "192.168.20.64/26", "192.168.31.0/26",
                                       "192.168.41.192/26", "192.168.52.128/26"]),
    ("node1", ["10.0.0.0/24", "192.168.0.0/16", "172.16.0.0/20"],
     ["192.168.110.64/26", "10.0.0.0/26", "172.16.11.0/26", "192.168.111.0/26",
      "172.16.5.64/26", "10.0.0.64/26", "10.0.0.128/26", "172.16.15.128/26"]),
    ("host-a", ["10.9.0.0/24"], ["10.9.0.64/26", "10.9.0.0/26", "10.9.0.192/26", "10.9.0.128/26"]),
    ("host-b", ["10.9.0.0/24"], ["10.9.0.64/26", "10.9.0.128/26", "10.9.0.192/26", "10.9.0.0/26"]),
])
def test_block_order_is_libcalicos(host, pools, expected):
    order = _random_subnets_from_cidrs([ipaddress.ip_network(p) for p in pools], 26, seed=host)
    assert [str(next(order)) for _ in expected] == expected


def test_block_order_visits_every_block_once():
    blocks = list(_random_subnets_from_cidrs([ipaddress.ip_network("192.168.0.0/16"),
                                              ipaddress.ip_network("10.0.0.0/26")], 26, seed="x"))
    assert len(blocks) == len(set(blocks)) == 1025


# -- auto-assign ---------------------------------------------------------------------------------

def test_fresh_block_hands_out_its_network_address_first_then_sequentially(ds, ipam,
                                                                             etcd_client):
    ds.add_pool(model.Pool("192.168.0.0/16"))
    assert ipam.auto_assign("calico-01") == ["192.168.142.0"]
    assert ipam.auto_assign("calico-01", 2) == ["192.168.142.1", "192.168.142.2"]
    assert ipam.auto_assign("calico-02") == ["192.168.9.128"]
    assert etcd_client.read(marker("calico-01", "192.168.142.0/26")).value == ""
    b = block(etcd_client, "192.168.142.0/26")
    assert list(b) == ["cidr", "affinity", "strict_affinity", "allocations", "unallocated",
                       "attributes"]
    assert b == {"cidr": "192.168.142.0/26", "affinity": "host:calico-01",
                 "strict_affinity": False, "allocations": [0, 0, 0] + [None] * 61,
                 "unallocated": list(range(3, 64)), "attributes": [NULL_ATTR]}


def test_the_same_host_gets_the_same_blocks_again_and_others_get_others(ds, ipam, etcd_client):
    ds.add_pool(model.Pool("192.168.0.0/16"))
    first = ipam.auto_assign("calico-01")
    etcd_client.delete("/calico/ipam", recursive=True, dir=True)
    assert ipam.auto_assign("calico-01") == first
    others = {block_of(ipam.auto_assign(f"host{i}")[0]) for i in range(5)}
    assert len(others) == 5 and block_of(first[0]) not in others


def test_a_full_block_makes_the_host_claim_its_next_block(ds, ipam):
    ds.add_pool(model.Pool("192.168.0.0/16"))
    ips = ipam.auto_assign("calico-01", 65)
    assert ips[:64] == [f"192.168.142.{i}" for i in range(64)]
    assert ips[64] == "192.168.156.192"                # next in calico-01's order
    assert ipam.affine_blocks("calico-01") == ["192.168.142.0/26", "192.168.156.192/26"]
    assert ipam.auto_assign("calico-01") == ["192.168.156.193"]


def test_attributes_are_stored_deduplicated(ds, ipam, etcd_client):
    ds.add_pool(model.Pool("10.9.0.0/26"))
    ipam.auto_assign("h1")                             # libnetwork auto-assign: null
    ipam.auto_assign("h1", attributes={})              # calicoctl: {}
    ipam.auto_assign("h1", attributes={})
    ipam.assign_ip("10.9.0.10", "h1", attributes={})  # libnetwork --ip: {}
    ipam.auto_assign("h1")
    b = block(etcd_client, "10.9.0.0/26")
    assert b["attributes"] == [NULL_ATTR, EMPTY_ATTR]
    assert b["allocations"][:5] == [0, 1, 1, 0, None] and b["allocations"][10] == 1
    assert ipam.get_assignment_attributes("10.9.0.1") == (None, {})
    assert ipam.get_assignment_attributes("10.9.0.0") == (None, None)
    assert ipam.get_assignment_attributes("10.9.0.20") is None
    ipam.release_ips(["10.9.0.0", "10.9.0.3"])        # the last users of the null entry
    b = block(etcd_client, "10.9.0.0/26")
    assert b["attributes"] == [EMPTY_ATTR]
    assert b["allocations"][:4] == [None, 0, 0, None] and b["allocations"][10] == 0


def test_assignment_is_restricted_to_the_given_pools(ds, ipam):
    ds.add_pool(model.Pool("192.168.0.0/16"))
    ds.add_pool(model.Pool("10.9.0.0/24"))
    ips = ipam.auto_assign("h1", 3, pool_cidrs=["10.9.0.0/24"])
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.9.0.0/24") for ip in ips)
    ip = ipam.auto_assign("h1", pool_cidrs=["192.168.0.0/16"])[0]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("192.168.0.0/16")
    with pytest.raises(PoolNotFoundError, match="172.16.0.0/16 is not configured"):
        ipam.auto_assign("h1", pool_cidrs=["172.16.0.0/16"])


def test_only_enabled_calico_ipam_pools_are_used(ds, ipam):
    ds.add_pool(model.Pool("10.1.0.0/24", ipam=False))
    ds.add_pool(model.Pool("10.2.0.0/24", disabled=True))
    with pytest.raises(NoAddressesError) as err:
        ipam.auto_assign("h1")
    assert str(err.value) == ("There are no available IP addresses in the configured Calico "
                              "IP pools")
    ds.add_pool(model.Pool("10.3.0.0/24"))
    assert ipam.auto_assign("h1")[0].startswith("10.3.0.")


def test_when_all_blocks_are_claimed_hosts_share_them_unless_strict(ds, ipam, etcd_client):
    ds.add_pool(model.Pool("10.9.0.0/25"))            # two blocks
    assert ipam.auto_assign("node1") == ["10.9.0.0"]
    assert ipam.auto_assign("node2") == ["10.9.0.64"]   # its first choice was taken
    third = ipam.auto_assign("node3")[0]                # no free block left: borrow
    assert ipaddress.ip_address(third) in ipaddress.ip_network("10.9.0.0/25")
    assert ipam.affine_blocks("node3") == []
    assert {block(etcd_client, c)["affinity"] for c in ("10.9.0.0/26", "10.9.0.64/26")} == \
        {"host:node1", "host:node2"}
    rest = ipam.auto_assign("node3", 125)
    assert len(set(rest) | {third, "10.9.0.0", "10.9.0.64"}) == 128
    with pytest.raises(NoAddressesError):
        ipam.auto_assign("node1")


def test_strict_affinity_keeps_hosts_out_of_foreign_blocks(ds, ipam, etcd_client):
    etcd_client.write("/calico/ipam/v2/config",
                      '{"auto_allocate_blocks": true, "strict_affinity": true}')
    ds.add_pool(model.Pool("10.9.0.0/26"))
    ipam.auto_assign("node1")
    assert block(etcd_client, "10.9.0.0/26")["strict_affinity"] is True
    with pytest.raises(NoAddressesError):
        ipam.auto_assign("node2")
    with pytest.raises(NoHostAffinityError):
        ipam.assign_ip("10.9.0.9", "node2")
    ipam.assign_ip("10.9.0.9", "node1")


def test_a_request_that_cannot_be_met_in_full_assigns_nothing(ds, ipam, etcd_client):
    ds.add_pool(model.Pool("10.9.0.0/26"))
    ipam.auto_assign("h1", 60)
    with pytest.raises(NoAddressesError):
        ipam.auto_assign("h1", 5)
    assert block(etcd_client, "10.9.0.0/26")["unallocated"] == [60, 61, 62, 63]


def test_ipv6_blocks_are_slash_122(ds, ipam, etcd_client):
    ds.add_pool(model.Pool("fd80:24e2:f998:72d6::/64"))
    (ip,) = ipam.auto_assign("calico-01", version=6)
    net = ipaddress.ip_network(f"{ip}/122", strict=False)
    assert ipaddress.ip_address(ip) == net.network_address
    assert ipam.affine_blocks("calico-01", 6) == [str(net)]
    key = f"/calico/ipam/v2/assignment/ipv6/block/{str(net).replace('/', '-')}"
    assert json.loads(etcd_client.read(key).value)["cidr"] == str(net)


# -- assign a given address ----------------------------------------------------------------------

def test_assign_ip_claims_the_block_for_the_requesting_host(ds, ipam, etcd_client):
    ds.add_pool(model.Pool("192.168.0.0/16"))
    ipam.assign_ip("192.168.7.70", "calico-02", attributes={})
    b = block(etcd_client, "192.168.7.64/26")
    assert b["affinity"] == "host:calico-02"
    assert b["allocations"][6] == 0 and 6 not in b["unallocated"]
    assert b["attributes"] == [EMPTY_ATTR]
    assert has_key(etcd_client, marker("calico-02", "192.168.7.64/26"))
    ipam.assign_ip("192.168.7.71", "calico-01")         # non-strict: fine in a foreign block
    assert block(etcd_client, "192.168.7.64/26")["affinity"] == "host:calico-02"
    assert ipam.affine_blocks("calico-01") == []
    # Auto-assign in the host's own block skips the taken ordinal.
    assert ipam.auto_assign("calico-02", 7) == [f"192.168.7.{64 + i}"
                                                for i in (0, 1, 2, 3, 4, 5, 8)]


def test_assign_ip_errors(ds, ipam):
    ds.add_pool(model.Pool("192.168.0.0/16"))
    ds.add_pool(model.Pool("10.1.0.0/24", ipam=False))
    ipam.assign_ip("192.168.1.1", "h1")
    with pytest.raises(AlreadyAssignedError) as err:
        ipam.assign_ip("192.168.1.1", "h2")
    assert str(err.value) == "The address 192.168.1.1 is already in use"
    for ip in ("172.16.0.1", "10.1.0.5"):
        with pytest.raises(PoolNotFoundError) as err:
            ipam.assign_ip(ip, "h1")
        assert str(err.value) == f"The address {ip} is not in one of the configured Calico IP pools"


# -- release ---------------------------------------------------------------------------------------

def test_release_frees_ordinals_to_the_back_of_the_queue(ds, ipam, etcd_client):
    ds.add_pool(model.Pool("10.9.0.0/26"))
    ips = ipam.auto_assign("h1", 3)
    assert ipam.release_ips([ips[0], "10.9.0.40", "10.9.1.1"]) == {"10.9.0.40", "10.9.1.1"}
    b = block(etcd_client, "10.9.0.0/26")
    assert b["unallocated"] == list(range(3, 64)) + [0]
    assert b["allocations"][:3] == [None, 0, 0]
    assert ipam.auto_assign("h1") == ["10.9.0.3"]       # not reused before the list wraps
    assert ipam.release_ips([]) == set()


def test_an_emptied_block_stays_while_it_has_affinity(ds, ipam, etcd_client):
    ds.add_pool(model.Pool("10.9.0.0/24"))
    ip = ipam.auto_assign("host-a")[0]
    ipam.release_ips([ip])
    assert block(etcd_client, block_of(ip))["allocations"] == [None] * 64
    ipam.assign_ip("10.9.0.130", "host-b")             # host-b's block ...
    ipam.assign_ip("10.9.0.131", "host-b")
    ipam.release_host_affinities("host-b")             # ... loses affinity, keeps addresses
    assert block(etcd_client, "10.9.0.128/26")["affinity"] == ""
    assert not has_key(etcd_client, marker("host-b", "10.9.0.128/26"))
    ipam.release_ips(["10.9.0.130"])
    assert has_key(etcd_client, "/calico/ipam/v2/assignment/ipv4/block/10.9.0.128-26")
    ipam.release_ips(["10.9.0.131"])                   # empty and without affinity: deleted
    assert not has_key(etcd_client, "/calico/ipam/v2/assignment/ipv4/block/10.9.0.128-26")


def test_release_host_affinities(ds, ipam, etcd_client):
    ds.add_pool(model.Pool("10.9.0.0/24"))
    used = ipam.auto_assign("host-a")[0]                # 10.9.0.64/26, keeps an address
    ipam.assign_ip("10.9.0.1", "host-a")               # 10.9.0.0/26 ...
    ipam.release_ips(["10.9.0.1"])                     # ... empty again
    etcd_client.write(marker("host-a", "10.9.0.192/26"), "")   # a stale marker, no block
    ipam.release_host_affinities("host-a")
    assert ipam.affine_blocks("host-a") == []
    assert block(etcd_client, block_of(used))["affinity"] == ""
    assert not has_key(etcd_client, "/calico/ipam/v2/assignment/ipv4/block/10.9.0.0-26")
    # The next host's claim of the freed block works as for a fresh one.
    assert ipam.auto_assign("host-b") == ["10.9.0.128"]


def test_pool_removal_releases_the_pools_affinities_only(ds, ipam, etcd_client):
    ds.add_pool(model.Pool("192.168.0.0/16"))
    ds.add_pool(model.Pool("10.9.0.0/24"))
    a = ipam.auto_assign("host-a", pool_cidrs=["10.9.0.0/24"])[0]
    b = ipam.auto_assign("host-b", pool_cidrs=["10.9.0.0/24"])[0]
    ipam.release_ips([b])                               # host-b's block is empty
    other = ipam.auto_assign("host-a", pool_cidrs=["192.168.0.0/16"])[0]
    # calicoctl pool remove: disable, release affinities, delete.
    ds.add_pool(model.Pool("10.9.0.0/24", disabled=True))
    ipam.release_pool_affinities("10.9.0.0/24")
    ds.remove_pool("10.9.0.0/24")
    assert block(etcd_client, block_of(a))["affinity"] == ""
    assert not has_key(etcd_client, "/calico/ipam/v2/assignment/ipv4/block/" +
                       block_of(b).replace("/", "-"))
    assert ipam.affine_blocks("host-a") == [block_of(other)]
    assert ipam.affine_blocks("host-b") == []
    assert block(etcd_client, block_of(other))["affinity"] == "host:host-a"
    snap = ds.snapshot()
    assert [h for h, _ in snap.affinities] == ["host-a"]


def test_a_disabled_pool_gets_no_new_blocks(ds, ipam):
    ds.add_pool(model.Pool("10.9.0.0/24", disabled=True))
    with pytest.raises(PoolNotFoundError):
        ipam.assign_ip("10.9.0.5", "h1")
    with pytest.raises(NoAddressesError):
        ipam.auto_assign("h1")


# -- concurrency -----------------------------------------------------------------------------------

def test_racing_hosts_never_get_the_same_address(ds, etcd_client):
    """host-a and host-b both want 10.9.0.64/26 first; two workers per host, 52 addresses."""
    ds.add_pool(model.Pool("10.9.0.0/24"))
    results: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(name: str, host: str):
        client = etcd.Client(host=etcd_client.host, port=etcd_client.port)
        ipam = Ipam(Datastore(client))
        got = []
        try:
            barrier.wait()
            for _ in range(13):
                got += ipam.auto_assign(host)
        except BaseException as e:                     # reported below
            errors.append(e)
        results[name] = got

    threads = [threading.Thread(target=worker, args=(f"{h}-{i}", h))
               for h in ("host-a", "host-b") for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    everything = [ip for got in results.values() for ip in got]
    assert len(everything) == 52
    assert [ip for ip, n in Counter(everything).items() if n > 1] == []
    snap = ds.snapshot()
    allocated = sum(64 - len(b.unallocated) for b in snap.blocks)
    assert allocated == 52
    owners = {b.cidr: b.affinity for b in snap.blocks}
    for host, cidr in snap.affinities:                 # every marker names the block's owner
        assert owners[cidr] == host
    for name, got in results.items():                  # each host used its own blocks
        host = name.rsplit("-", 1)[0]
        assert {owners[block_of(ip)] for ip in got} == {host}
