"""Calico IPAM v2 of the reference node: libcalico 0.17 `ipam.py` + `block.py` (spec §1.7).

Addresses live in /26 (IPv4) or /122 (IPv6) allocation blocks, one etcd key each, updated with
compare-and-swap on the key's modifiedIndex. A host claims a block by writing its affinity marker
(/calico/ipam/v2/host/<host>/ipv4/block/<cidr>) and then creating the block with prevExist=false;
the loser of a race removes its marker again.

Auto-assign walks the pools' blocks in libcalico's pseudo-random order seeded by the hostname.
libcalico ran on Python 2, where `random.Random("calico-01")` seeds Mersenne Twister with the
Python 2 string hash and `choice`/`randint`/`shuffle` scale `random()`; this module reproduces
those exactly on Python 3's identical generator, so a host claims the same blocks a 2016 host of
that name would have claimed (given the same pools; see `_random_subnets_from_cidrs`).

Allocation handles (/calico/ipam/v2/handle) are not implemented: Docker flows never create them
(spec §1.7) — every attribute entry here has "handle_id": null.
"""
from __future__ import annotations

import ipaddress
import json
import math
import random
from collections import deque
from typing import Iterable

import etcd

from . import keys
from .datastore import Datastore, DatastoreError, etcd_errors

BLOCK_SIZE_BITS = 6
BLOCK_SIZE = 2 ** BLOCK_SIZE_BITS
BLOCK_PREFIXLEN = {4: 32 - BLOCK_SIZE_BITS, 6: 128 - BLOCK_SIZE_BITS}
RETRIES = 100
KEY_ERROR_RETRIES = 3

# Steps through a pool's blocks: all coprime to powers of 2, so every block is visited once.
STEPS = [1, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59]

IPAM_DEFAULT_CONFIG = {"auto_allocate_blocks": True, "strict_affinity": False}


class IpamError(DatastoreError):
    """An IPAM request that cannot be met; str() is the message the plugin/calicoctl prints."""


class AlreadyAssignedError(IpamError):
    pass


class PoolNotFoundError(IpamError):
    pass


class NoAddressesError(IpamError):
    def __init__(self, message: str = "There are no available IP addresses in the configured "
                                      "Calico IP pools"):
        super().__init__(message)


class NoHostAffinityError(IpamError):
    """Auto-assign in a block of another host, or assign in a strict-affinity foreign block."""


class HostAffinityClaimedError(IpamError):
    """The block belongs to another host."""


class _CASError(Exception):
    """Compare-and-swap lost: re-read and retry."""


class _NoFreeBlocksError(Exception):
    pass


# -- keys -------------------------------------------------------------------------------------

def block_cidr_for(ip) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The /26 (/122) block that holds `ip`."""
    addr = ipaddress.ip_address(str(ip))
    return ipaddress.ip_network((addr, BLOCK_PREFIXLEN[addr.version]), strict=False)


def block_key(cidr) -> str:
    net = ipaddress.ip_network(str(cidr))
    return f"/calico/ipam/v2/assignment/ipv{net.version}/block/{keys.cidr_key(str(net))}"


def affinity_key(hostname: str, cidr) -> str:
    net = ipaddress.ip_network(str(cidr))
    return f"{keys.IPAM_HOSTS}/{hostname}/ipv{net.version}/block/{keys.cidr_key(str(net))}"


# -- Python 2 `random` on Python 3 ------------------------------------------------------------

_MASK64 = (1 << 64) - 1


def py2_str_hash(s: str) -> int:
    """Python 2.7's hash() of a (byte) str on a 64-bit build without -R (stringobject.c)."""
    data = s.encode("utf-8")
    if not data:
        return 0
    x = (data[0] << 7) & _MASK64
    for c in data:
        x = ((1000003 * x) & _MASK64) ^ c
    x ^= len(data)
    if x >= 1 << 63:
        x -= 1 << 64
    return -2 if x == -1 else x


def py2_random(seed) -> random.Random:
    """`random.Random(seed)` as Python 2.7 seeded it: a str seed goes through hash(), and the
    C seeder takes that hash as an unsigned long. An int seed is used by absolute value (same
    on Python 3)."""
    if isinstance(seed, str):
        seed = py2_str_hash(seed) & _MASK64
    elif isinstance(seed, int):
        seed = abs(seed)
    return random.Random(seed)


def _py2_choice(rnd: random.Random, seq):
    return seq[int(rnd.random() * len(seq))]


def _py2_randbelow(rnd: random.Random, n: int) -> int:
    k = int(1.00001 + math.log(n - 1, 2.0))
    r = rnd.getrandbits(k)
    while r >= n:
        r = rnd.getrandbits(k)
    return r


def _py2_randint(rnd: random.Random, a: int, b: int) -> int:
    width = b + 1 - a
    if width >= 1 << 53:
        return a + _py2_randbelow(rnd, width)
    return a + int(rnd.random() * width)


def _py2_shuffle(rnd: random.Random, x) -> None:
    for i in reversed(range(1, len(x))):
        j = int(rnd.random() * (i + 1))
        x[i], x[j] = x[j], x[i]


def _random_subnets_from_cidr(cidr, prefixlen: int, rnd: random.Random):
    """The `prefixlen` subnets of `cidr`, each once, from a random start with a random step.
    A generator, drawing from `rnd` only when first advanced (as libcalico's did)."""
    if not 0 <= prefixlen <= cidr.max_prefixlen:
        raise ValueError(f"CIDR prefix /{prefixlen} invalid for IPv{cidr.version}!")
    if cidr.prefixlen > prefixlen:
        return
    max_subnets = 2 ** (prefixlen - cidr.prefixlen)
    base = int(cidr.network_address)
    size = 2 ** (cidr.max_prefixlen - prefixlen)
    step = _py2_choice(rnd, STEPS)
    position = _py2_randint(rnd, 0, max_subnets - 1)
    for _ in range(max_subnets):
        yield ipaddress.ip_network((base + size * position, prefixlen))
        position = (position + step) % max_subnets


def _random_subnets_from_cidrs(cidrs, prefixlen: int, seed=None):
    """libcalico `_random_subnets_from_cidrs`: interleave the pools' random walks, reshuffling
    the pool order at the start of every round."""
    rnd = py2_random(seed) if seed is not None else random.Random()
    pool_subnets = deque(_random_subnets_from_cidr(c, prefixlen, rnd) for c in cidrs)
    num_generated = 0
    while pool_subnets:
        if num_generated % len(pool_subnets) == 0:
            _py2_shuffle(rnd, pool_subnets)
        gen = pool_subnets.popleft()
        try:
            subnet = next(gen)
        except StopIteration:
            continue
        yield subnet
        pool_subnets.append(gen)
        num_generated += 1


# -- allocation block -------------------------------------------------------------------------

class AllocationBlock:
    """One block and its etcd modifiedIndex (None: not yet stored)."""

    def __init__(self, cidr, host_affinity: str | None, strict_affinity: bool = False):
        self.cidr = ipaddress.ip_network(str(cidr))
        assert self.cidr.prefixlen == BLOCK_PREFIXLEN[self.cidr.version]
        self.host_affinity = host_affinity
        self.strict_affinity = bool(strict_affinity)
        self.allocations: list[int | None] = [None] * BLOCK_SIZE
        self.unallocated: list[int] = list(range(BLOCK_SIZE))
        self.attributes: list[dict] = []
        self.modified_index: int | None = None

    @classmethod
    def from_json(cls, text: str, modified_index: int | None = None) -> "AllocationBlock":
        try:
            d = json.loads(text)
            affinity = d.get("affinity") or ""
            host = (affinity[5:] or None) if affinity.startswith("host:") else None
            block = cls(d["cidr"], host, d.get("strict_affinity", False))
            allocations = list(d["allocations"])
            attributes = list(d.get("attributes") or [])
            unallocated = d.get("unallocated")
            if unallocated is None:           # blocks written before `unallocated` existed
                unallocated = [o for o, a in enumerate(allocations) if a is None]
            unallocated = list(unallocated)
        except (TypeError, ValueError, KeyError, AttributeError, AssertionError) as e:
            raise IpamError(f"Unreadable allocation block: {text!r} ({e})") from e
        if (len(allocations) != BLOCK_SIZE
                or sorted(unallocated) != [o for o, a in enumerate(allocations) if a is None]
                or any(a is not None and not 0 <= a < len(attributes) for a in allocations)):
            raise IpamError(f"Inconsistent allocation block {block.cidr}")
        block.allocations, block.unallocated = allocations, unallocated
        block.attributes = attributes
        block.modified_index = modified_index
        return block

    def to_json(self) -> str:
        return json.dumps({
            "cidr": str(self.cidr),
            "affinity": f"host:{self.host_affinity}" if self.host_affinity else "",
            "strict_affinity": self.strict_affinity,
            "allocations": self.allocations,
            "unallocated": self.unallocated,
            "attributes": self.attributes,
        })

    def _ip(self, ordinal: int) -> str:
        return str(self.cidr.network_address + ordinal)

    def _ordinal(self, ip) -> int:
        ordinal = int(ipaddress.ip_address(str(ip))) - int(self.cidr.network_address)
        assert 0 <= ordinal < BLOCK_SIZE, f"{ip} is not in block {self.cidr}"
        return ordinal

    def is_empty(self) -> bool:
        return len(self.unallocated) == BLOCK_SIZE

    def auto_assign(self, num: int, attributes, host: str,
                    affinity_check: bool = True) -> list[str]:
        """Up to `num` addresses, taking free ordinals from the front of `unallocated`."""
        if affinity_check and host != self.host_affinity:
            raise NoHostAffinityError(f"Block host affinity is {self.host_affinity} (not {host})")
        ordinals = []
        while self.unallocated and len(ordinals) < num:
            ordinals.append(self.unallocated.pop(0))
        if not ordinals:
            return []
        index = self._find_or_add_attrs(None, attributes)
        for o in ordinals:
            self.allocations[o] = index
        return [self._ip(o) for o in ordinals]

    def assign(self, ip, attributes, host: str) -> None:
        if self.strict_affinity and host != self.host_affinity:
            raise NoHostAffinityError(f"Block host affinity is {self.host_affinity} (not {host})")
        ordinal = self._ordinal(ip)
        if self.allocations[ordinal] is not None:
            raise AlreadyAssignedError(f"The address {ip} is already in use")
        self.allocations[ordinal] = self._find_or_add_attrs(None, attributes)
        self.unallocated.remove(ordinal)

    def release(self, ips: Iterable[str]) -> set[str]:
        """Free the given addresses (released ordinals go to the back of `unallocated`, in
        address order); returns the ones that were not allocated."""
        not_allocated, ordinals, releasing = set(), [], {}
        for ip in sorted(set(ips), key=lambda a: int(ipaddress.ip_address(a))):
            o = self._ordinal(ip)
            index = self.allocations[o]
            if index is None:
                not_allocated.add(ip)
                continue
            ordinals.append(o)
            releasing[index] = releasing.get(index, 0) + 1
        refs: dict[int, int] = {}
        for a in self.allocations:
            if a is not None:
                refs[a] = refs.get(a, 0) + 1
        dead = {i for i, n in releasing.items() if refs[i] == n}
        for o in ordinals:
            self.allocations[o] = None
            self.unallocated.append(o)
        if dead:                            # drop unused attribute entries and renumber
            renumber, kept = {}, []
            for i, attr in enumerate(self.attributes):
                if i not in dead:
                    renumber[i] = len(kept)
                    kept.append(attr)
            self.attributes = kept
            self.allocations = [None if a is None else renumber[a] for a in self.allocations]
        return not_allocated

    def _find_or_add_attrs(self, handle_id, attributes) -> int:
        attr = {"handle_id": handle_id, "secondary": attributes}
        for i, existing in enumerate(self.attributes):
            if existing == attr:
                return i
        self.attributes.append(attr)
        return len(self.attributes) - 1

    def attributes_for(self, ip) -> tuple | None:
        index = self.allocations[self._ordinal(ip)]
        if index is None:
            return None
        attr = self.attributes[index]
        return attr.get("handle_id"), attr.get("secondary")


# -- the IPAM client --------------------------------------------------------------------------

class Ipam:
    """libcalico 0.17 `IPAMClient` on a Datastore."""

    def __init__(self, ds: Datastore):
        self.ds = ds
        self.client = ds.client

    # -- etcd access --------------------------------------------------------------------------
    def _read_block(self, cidr) -> AllocationBlock:
        """KeyError if the block does not exist."""
        try:
            result = self.client.read(block_key(cidr), quorum=True)
        except etcd.EtcdKeyNotFound:
            raise KeyError(str(cidr)) from None
        return AllocationBlock.from_json(result.value, result.modifiedIndex)

    def _cas_block(self, block: AllocationBlock) -> None:
        key = block_key(block.cidr)
        try:
            if block.modified_index is None:
                result = self.client.write(key, block.to_json(), prevExist=False)
            else:
                result = self.client.write(key, block.to_json(), prevIndex=block.modified_index)
        except (etcd.EtcdCompareFailed, etcd.EtcdAlreadyExist, etcd.EtcdKeyNotFound):
            raise _CASError(str(block.cidr)) from None
        block.modified_index = result.modifiedIndex

    def _delete_block(self, block: AllocationBlock) -> None:
        try:
            self.client.delete(block_key(block.cidr), prevIndex=block.modified_index)
        except (etcd.EtcdCompareFailed, etcd.EtcdKeyNotFound):
            raise _CASError(str(block.cidr)) from None

    def _delete_key(self, key: str) -> None:
        try:
            self.client.delete(key)
        except etcd.EtcdKeyNotFound:
            pass

    @etcd_errors
    def get_ipam_config(self) -> dict:
        """/calico/ipam/v2/config; absent means auto_allocate_blocks true, strict_affinity false."""
        try:
            d = json.loads(self.client.read(keys.IPAM_CONFIG).value)
        except etcd.EtcdKeyNotFound:
            return dict(IPAM_DEFAULT_CONFIG)
        except (TypeError, ValueError):
            return dict(IPAM_DEFAULT_CONFIG)
        cfg = dict(IPAM_DEFAULT_CONFIG)
        if isinstance(d, dict):
            cfg.update({k: bool(d[k]) for k in IPAM_DEFAULT_CONFIG if k in d})
        return cfg

    @etcd_errors
    def affine_blocks(self, hostname: str, version: int = 4) -> list[str]:
        """Blocks this host has an affinity marker for, in address order."""
        return [str(b) for b in self._affine_blocks(hostname, version)]

    def _affine_blocks(self, hostname: str, version: int) -> list:
        try:
            result = self.client.read(f"{keys.IPAM_HOSTS}/{hostname}/ipv{version}/block",
                                      quorum=True)
        except etcd.EtcdKeyNotFound:
            return []
        blocks = []
        for child in result.leaves:              # the direct children of a plain read
            parts = (child.key or "").split("/")
            if len(parts) == 9 and not child.dir:
                try:
                    blocks.append(ipaddress.ip_network(keys.key_cidr(parts[8])))
                except ValueError:
                    continue
        return sorted(blocks, key=lambda n: int(n.network_address))

    def _ipam_pools(self, version: int, pool_cidrs=None) -> list:
        """Enabled Calico-IPAM pools (ipam true, not disabled), in address order; confined to
        `pool_cidrs` if given (each must be one of them)."""
        nets = [ipaddress.ip_network(p.cidr) for p in self.ds.pools(version)
                if p.ipam and not p.disabled]
        if pool_cidrs is None:
            return nets
        wanted = []
        for c in pool_cidrs:
            net = ipaddress.ip_network(str(c), strict=False)
            if net not in nets:
                raise PoolNotFoundError(f"Requested pool {net} is not configured or has "
                                        "wrong attributes")
            wanted.append(net)
        return [n for n in nets if n in wanted]

    def _random_blocks(self, version: int, pools: list, excluded=(), seed=None):
        excluded = set(excluded)
        for block in _random_subnets_from_cidrs(pools, BLOCK_PREFIXLEN[version], seed=seed):
            if block not in excluded:
                yield block

    def _claim_block_affinity(self, hostname: str, cidr, config: dict) -> None:
        """Marker first, then create the block (prevExist=false); HostAffinityClaimedError if
        another host's block is already there (our marker is removed again)."""
        marker = affinity_key(hostname, cidr)
        self.client.write(marker, "")
        block = AllocationBlock(cidr, hostname, config["strict_affinity"])
        try:
            self._cas_block(block)
            return
        except _CASError:
            pass
        try:
            owner = self._read_block(cidr).host_affinity
        except KeyError:
            owner = None
        if owner == hostname:
            return                                    # another process of this host won
        self._delete_key(marker)
        raise HostAffinityClaimedError(f"Block {cidr} already claimed by {owner}")

    def _new_affine_block(self, hostname: str, version: int, pools: list, config: dict):
        for cidr in self._random_blocks(version, pools, seed=hostname):
            try:
                self.client.read(block_key(cidr), quorum=True)
                continue                              # taken
            except etcd.EtcdKeyNotFound:
                pass
            try:
                self._claim_block_affinity(hostname, cidr, config)
            except HostAffinityClaimedError:
                continue
            return cidr
        raise _NoFreeBlocksError()

    def _assign_in_block(self, cidr, num: int, attributes, hostname: str,
                         affinity_check: bool = True) -> list[str]:
        for _ in range(RETRIES):
            block = self._read_block(cidr)
            ips = block.auto_assign(num, attributes, hostname, affinity_check)
            if not ips:
                return []
            try:
                self._cas_block(block)
            except _CASError:
                continue
            return ips
        raise IpamError("Hit Max Retries.")

    # -- public API -----------------------------------------------------------------------------
    @etcd_errors
    def auto_assign(self, hostname: str, num: int = 1, pool_cidrs=None, attributes=None,
                    version: int = 4) -> list[str]:
        """`num` addresses for `hostname`: (1) from its affine blocks, (2) from new blocks it
        claims (hostname-seeded order over the enabled IPAM pools), (3) unless strict affinity,
        from any other block with room. All or nothing: NoAddressesError if short."""
        pools = self._ipam_pools(version, pool_cidrs)
        host_blocks = self._affine_blocks(hostname, version)
        if pool_cidrs is not None:
            host_blocks = [b for b in host_blocks if any(b.subnet_of(p) for p in pools)]
        allocated: list[str] = []
        queue, key_errors = deque(host_blocks), 0
        while len(allocated) < num and queue:
            cidr = queue.popleft()
            try:
                allocated += self._assign_in_block(cidr, num - len(allocated), attributes,
                                                   hostname)
            except KeyError:
                # A marker whose block another process of this host is still creating.
                key_errors += 1
                if key_errors <= KEY_ERROR_RETRIES:
                    queue.append(cidr)
            except NoHostAffinityError:
                continue
        if len(allocated) < num:
            config = self.get_ipam_config()
            if config["auto_allocate_blocks"]:
                for _ in range(RETRIES):
                    if len(allocated) >= num:
                        break
                    try:
                        cidr = self._new_affine_block(hostname, version, pools, config)
                    except _NoFreeBlocksError:
                        break
                    allocated += self._assign_in_block(cidr, num - len(allocated), attributes,
                                                       hostname)
            if len(allocated) < num and not config["strict_affinity"]:
                for cidr in self._random_blocks(version, pools, excluded=host_blocks,
                                                seed=hostname):
                    if len(allocated) >= num:
                        break
                    try:
                        allocated += self._assign_in_block(cidr, num - len(allocated),
                                                           attributes, hostname,
                                                           affinity_check=False)
                    except KeyError:
                        continue                      # no such block: nothing to take there
        if len(allocated) < num:
            if allocated:
                self.release_ips(allocated)
            raise NoAddressesError()
        return allocated

    @etcd_errors
    def assign_ip(self, ip: str, hostname: str, attributes=None) -> None:
        """Assign exactly `ip`; its block is created (with affinity to `hostname`) if it does not
        exist yet and lies in an enabled IPAM pool."""
        addr = ipaddress.ip_address(str(ip))
        cidr = block_cidr_for(addr)
        config = None
        for _ in range(RETRIES):
            try:
                block = self._read_block(cidr)
            except KeyError:
                if not any(cidr.subnet_of(p) for p in self._ipam_pools(addr.version)):
                    raise PoolNotFoundError(f"The address {addr} is not in one of the configured "
                                            "Calico IP pools") from None
                config = config or self.get_ipam_config()
                try:
                    self._claim_block_affinity(hostname, cidr, config)
                except HostAffinityClaimedError:
                    pass
                continue
            block.assign(addr, attributes, hostname)
            try:
                self._cas_block(block)
                return
            except _CASError:
                continue
        raise IpamError("Hit max retries.")

    @etcd_errors
    def release_ips(self, ips: Iterable[str]) -> set[str]:
        """Free the addresses; returns those that were not allocated. A block that becomes
        empty is deleted only if no host has affinity to it."""
        by_block: dict = {}
        for ip in ips:
            addr = ipaddress.ip_address(str(ip))
            by_block.setdefault(block_cidr_for(addr), set()).add(str(addr))
        unallocated: set[str] = set()
        for cidr, addrs in sorted(by_block.items(), key=lambda kv: (kv[0].version,
                                                                    int(kv[0].network_address))):
            unallocated |= self._release_from_block(cidr, addrs)
        return unallocated

    def _release_from_block(self, cidr, addrs: set[str]) -> set[str]:
        for _ in range(RETRIES):
            try:
                block = self._read_block(cidr)
            except KeyError:
                return set(addrs)
            not_allocated = block.release(addrs)
            if len(not_allocated) == len(addrs):
                return not_allocated
            try:
                if block.is_empty() and not block.host_affinity:
                    self._delete_block(block)
                else:
                    self._cas_block(block)
            except _CASError:
                continue
            return not_allocated
        raise IpamError("Hit Max retries.")

    def _release_block_affinity(self, hostname: str, cidr) -> None:
        """Empty block: deleted; otherwise it loses its affinity. Then the marker goes.
        KeyError: no such block; HostAffinityClaimedError: it is another host's."""
        for _ in range(RETRIES):
            block = self._read_block(cidr)
            if block.host_affinity != hostname:
                raise HostAffinityClaimedError(f"Block {cidr} is claimed by "
                                               f"{block.host_affinity}")
            try:
                if block.is_empty():
                    self._delete_block(block)
                else:
                    block.host_affinity = None
                    self._cas_block(block)
            except _CASError:
                continue
            self._delete_key(affinity_key(hostname, cidr))
            return
        raise IpamError("Max retries hit.")

    def _release_or_forget(self, hostname: str, cidr) -> None:
        try:
            self._release_block_affinity(hostname, cidr)
        except (KeyError, HostAffinityClaimedError):
            # A marker without a block of this host is stale (a lost claim race, a crash in
            # between): it would make confd announce a block this host does not own.
            self._delete_key(affinity_key(hostname, cidr))

    @etcd_errors
    def release_host_affinities(self, hostname: str) -> None:
        """Give up every block of the host: empty ones are deleted, others lose affinity."""
        for version in (4, 6):
            for cidr in self._affine_blocks(hostname, version):
                self._release_or_forget(hostname, cidr)

    @etcd_errors
    def remove_ipam_host(self, hostname: str) -> None:
        """`node remove`: release the host's affinities and drop its IPAM host tree."""
        self.release_host_affinities(hostname)
        try:
            self.client.delete(f"{keys.IPAM_HOSTS}/{hostname}", recursive=True, dir=True)
        except etcd.EtcdKeyNotFound:
            pass

    @etcd_errors
    def release_pool_affinities(self, cidr: str) -> None:
        """`pool remove`: release every host's affinity to blocks inside the pool."""
        pool = ipaddress.ip_network(str(cidr), strict=False)
        for _ in range(KEY_ERROR_RETRIES):
            pairs = self._host_block_pairs(pool)
            if not pairs:
                return
            for hostname, block in pairs:
                self._release_or_forget(hostname, block)

    def _host_block_pairs(self, pool) -> list[tuple[str, object]]:
        try:
            result = self.client.read(keys.IPAM_HOSTS, recursive=True, quorum=True)
        except etcd.EtcdKeyNotFound:
            return []
        pairs = []
        for leaf in result.leaves:
            parts = (leaf.key or "").split("/")
            if len(parts) != 9 or leaf.dir:
                continue
            try:
                block = ipaddress.ip_network(keys.key_cidr(parts[8]))
            except ValueError:
                continue
            if block.version == pool.version and block.subnet_of(pool):
                pairs.append((parts[5], block))
        return sorted(pairs, key=lambda hb: (hb[0], int(hb[1].network_address)))

    @etcd_errors
    def get_assignment_attributes(self, ip: str) -> tuple | None:
        """(handle_id, secondary attributes) of an allocated address, None if it is free."""
        try:
            block = self._read_block(block_cidr_for(ip))
        except KeyError:
            return None
        return block.attributes_for(ip)
