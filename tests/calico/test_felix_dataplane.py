"""Dataplane.apply() against real kernels: throw-away cftest-* namespaces only.

Topology: a "host" netns (no default route; 169.254.1.1/32 on lo, gotcha G1) and workload
namespaces A, B (profile net1) and C (profile net2), each on a veth whose host side is the
endpoint's cali interface. The Dataplane runs in a thread that setns()-ed into the host netns,
so every command and /proc/sys write lands there and nowhere else.
"""
from __future__ import annotations

import concurrent.futures
import ctypes
import json
import os
import queue
import subprocess
import threading
import time

import pytest

from lab.calico import model
from lab.calico.felix import render
from lab.calico.felix.agent import Agent
from lab.calico.felix.dataplane import Dataplane

# -- namespace helpers (cftest-* only) -------------------------------------------------------
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def sh(*argv: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess:
    cp = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                        stdin=subprocess.DEVNULL)
    if check and cp.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({cp.returncode}): {cp.stderr.strip()}")
    return cp


def nsexec(ns: str, *argv: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess:
    assert ns.startswith("cftest-")
    return sh("ip", "netns", "exec", ns, *argv, check=check, timeout=timeout)


def enter_netns(ns: str) -> None:
    """Move the *calling thread* into netns `ns`."""
    assert ns.startswith("cftest-")
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
    finally:
        os.close(fd)


class NetnsThread:
    """A worker thread inside a netns: call(fn, *args) runs fn there and returns its result."""

    def __init__(self, ns: str):
        self.ns = ns
        self._q: queue.Queue = queue.Queue()
        self._ready = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._loop, name=f"netns-{ns}", daemon=True)
        self._thread.start()
        self._ready.result(timeout=10)

    def _loop(self):
        try:
            enter_netns(self.ns)
        except Exception as exc:          # noqa: BLE001
            self._ready.set_exception(exc)
            return
        self._ready.set_result(True)
        while True:
            item = self._q.get()
            if item is None:
                return
            fn, args, kwargs, fut = item
            try:
                fut.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001
                fut.set_exception(exc)

    def call(self, fn, *args, timeout: float = 120, **kwargs):
        fut = concurrent.futures.Future()
        self._q.put((fn, args, kwargs, fut))
        return fut.result(timeout=timeout)

    def close(self):
        self._q.put(None)
        self._thread.join(timeout=10)


def start_thread_in_netns(ns: str, target, *args) -> threading.Thread:
    def body():
        enter_netns(ns)
        target(*args)
    t = threading.Thread(target=body, name=f"in-{ns}", daemon=True)
    t.start()
    return t


def add_netns(name: str) -> None:
    assert name.startswith("cftest-")
    sh("ip", "netns", "add", name)
    sh("ip", "-n", name, "link", "set", "lo", "up")


def del_netns(name: str) -> None:
    assert name.startswith("cftest-")
    sh("ip", "netns", "del", name, check=False)


def add_workload(host_ns: str, wl_ns: str, iface: str, ip: str, mac: str,
                 pool: str = "10.65.0.0/24") -> None:
    """A veth whose host side (`iface`) sits in host_ns and whose eth0 sits in wl_ns with ip/32.
    The workload reaches the pool via 169.254.1.1 (Calico's gateway); no default route."""
    sh("ip", "-n", host_ns, "link", "add", iface, "type", "veth", "peer", "name", "eth0",
       "netns", wl_ns)
    sh("ip", "-n", wl_ns, "link", "set", "eth0", "address", mac)
    sh("ip", "-n", wl_ns, "addr", "add", f"{ip}/32", "dev", "eth0")
    sh("ip", "-n", wl_ns, "link", "set", "eth0", "up")
    sh("ip", "-n", host_ns, "link", "set", iface, "up")
    sh("ip", "-n", wl_ns, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
    sh("ip", "-n", wl_ns, "route", "add", pool, "via", "169.254.1.1", "dev", "eth0")


pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

HOST = "cfnode1"
MAC = "ee:ee:ee:ee:ee:ee"
A_IF, B_IF, C_IF = "caliaaaa0000001", "calibbbb0000002", "calicccc0000003"
A_IP, B_IP, C_IP, REMOTE_IP = "10.65.0.1", "10.65.0.2", "10.65.0.3", "10.65.0.9"
TIMINGS: dict[str, float] = {}


def endpoint(iface, ip, profiles, host=HOST):
    return model.Endpoint(hostname=host, orchestrator_id="libnetwork", workload_id="libnetwork",
                          endpoint_id=iface[4:] + "f" * 53, name=iface, mac="EE:EE:EE:EE:EE:EE",
                          profile_ids=tuple(profiles), ipv4_nets=(f"{ip}/32",))


def profile(name, extra_inbound=()):
    return model.Profile(name, (name,), ({"action": "allow", "src_tag": name}, *extra_inbound),
                         ({"action": "allow"},))


def snapshot(endpoints=None, profiles=None, index=1, host_config=()):
    if endpoints is None:
        endpoints = [endpoint(A_IF, A_IP, ["net1"]), endpoint(B_IF, B_IP, ["net1"]),
                     endpoint(C_IF, C_IP, ["net2"]),
                     endpoint("caliremote00009", REMOTE_IP, ["net1"], host="cfnode2")]
    if profiles is None:
        profiles = [profile("net1"), profile("net2")]
    return model.Snapshot(
        etcd_index=index, ready=True,
        hosts=(model.Host(HOST, "192.168.20.1", "192.168.20.1",
                          config=(("DefaultEndpointToHostAction", "RETURN"), *host_config)),
               model.Host("cfnode2", "192.168.20.2", "192.168.20.2")),
        profiles=tuple(profiles), endpoints=tuple(endpoints))


def root_state():
    """What must never change in the root namespace (read-only look)."""
    ipt = [line.split(" [")[0] for line in sh("iptables-save").stdout.splitlines()
           if not line.startswith("#")]
    return ipt, sh("ipset", "list", "-n").stdout, sh("ip", "route").stdout


@pytest.fixture(scope="module")
def lab():
    tag = f"cftest-fx{os.getpid() % 100000}"
    h, a, b, c = (f"{tag}-{x}" for x in "habc")
    before = root_state()
    made, worker = [], None
    try:
        for ns in (h, a, b, c):
            add_netns(ns)
            made.append(ns)
        worker = NetnsThread(h)
        worker.call(lambda: open("/proc/sys/net/ipv4/ip_forward", "w").write("1"))
        sh("ip", "-n", h, "route", "add", "169.254.1.1/32", "dev", "lo")   # gotcha G1
        add_workload(h, a, A_IF, A_IP, MAC)
        add_workload(h, b, B_IF, B_IP, MAC)
        add_workload(h, c, C_IF, C_IP, MAC)
        yield {"h": h, "a": a, "b": b, "c": c, "worker": worker, "dp": Dataplane()}
    finally:
        if worker is not None:
            worker.close()              # the thread pins the netns while it lives
        for ns in made:
            del_netns(ns)
        assert root_state() == before, "the root namespace was changed"
        if TIMINGS:
            print("\nfelix apply timings (ms): "
                  + ", ".join(f"{k}={v * 1000:.1f}" for k, v in TIMINGS.items()))


def apply(lab, desired, force=False):
    res = lab["worker"].call(lab["dp"].apply, desired, force=force)
    assert res.ok, res.errors
    return res


def ping(src_ns, ip) -> bool:
    return nsexec(src_ns, "busybox", "ping", "-c", "1", "-W", "1", ip, check=False).returncode == 0


def tcp(src_ns, ip, port) -> str | None:
    cp = nsexec(src_ns, "busybox", "nc", "-w", "1", ip, str(port), check=False, timeout=10)
    return cp.stdout.strip() if cp.returncode == 0 and cp.stdout.strip() else None


def save(lab, table="filter"):
    return nsexec(lab["h"], "iptables-save", "-t", table).stdout


def ipset_members(lab, name):
    out = nsexec(lab["h"], "ipset", "list", name, check=False)
    if out.returncode != 0:
        return None
    text = out.stdout.split("Members:", 1)[1]
    return {line.strip() for line in text.splitlines() if line.strip()}


# -- tests (module order matters: they walk one host through a lifecycle) ----------------------
def test_first_apply_programs_everything(lab):
    res = apply(lab, render(snapshot(), HOST))
    TIMINGS["first"] = res.seconds
    assert res.pending == [] and res.changes
    h = lab["h"]
    routes = json.loads(nsexec(h, "ip", "-j", "route", "show").stdout)
    assert {"dst": A_IP, "dev": A_IF, "scope": "link"}.items() <= \
        next(r for r in routes if r["dst"] == A_IP).items()
    assert {(r["dst"], r["dev"]) for r in routes if r["dev"].startswith("cali")} == {
        (A_IP, A_IF), (B_IP, B_IF), (C_IP, C_IF)}
    neigh = json.loads(nsexec(h, "ip", "-j", "neigh", "show").stdout)
    assert {(n["dst"], n["dev"], n["lladdr"]) for n in neigh if "PERMANENT" in n["state"]} == {
        (A_IP, A_IF, MAC), (B_IP, B_IF, MAC), (C_IP, C_IF, MAC)}

    def sysctls():
        read = lambda p: open(f"/proc/sys/{p}").read().strip()
        return {p: read(p) for p in (f"net/ipv4/conf/{A_IF}/rp_filter", f"net/ipv4/conf/{A_IF}/proxy_arp",
                                     f"net/ipv4/conf/{A_IF}/route_localnet",
                                     f"net/ipv4/neigh/{A_IF}/proxy_delay",
                                     "net/ipv4/conf/default/rp_filter")}
    assert lab["worker"].call(sysctls) == {
        f"net/ipv4/conf/{A_IF}/rp_filter": "1", f"net/ipv4/conf/{A_IF}/proxy_arp": "1",
        f"net/ipv4/conf/{A_IF}/route_localnet": "1", f"net/ipv4/neigh/{A_IF}/proxy_delay": "0",
        "net/ipv4/conf/default/rp_filter": "1"}
    filt = save(lab)
    for kernel in ("INPUT", "OUTPUT", "FORWARD"):
        rules = [line for line in filt.splitlines() if line.startswith(f"-A {kernel} ")]
        assert rules == [f"-A {kernel} -j felix-{kernel}"]
    for chain in ("felix-to-aaaa0000001", "felix-from-aaaa0000001", "felix-p-net1-i", "felix-p-net2-o"):
        assert f":{chain} - " in filt
    assert "-A felix-from-aaaa0000001 -m mac ! --mac-source ee:ee:ee:ee:ee:ee" in filt
    nat = save(lab, "nat")
    assert "-A PREROUTING -j felix-PREROUTING" in nat and "-A POSTROUTING -j felix-POSTROUTING" in nat
    assert ipset_members(lab, "felix-v4-net1") == {A_IP, B_IP, REMOTE_IP}
    assert ipset_members(lab, "felix-v4-net2") == {C_IP}


def test_reapply_is_a_noop(lab):
    desired = render(snapshot(), HOST)
    before = save(lab), save(lab, "nat"), nsexec(lab["h"], "ipset", "save").stdout
    res = apply(lab, desired)
    TIMINGS["unchanged"] = res.seconds
    assert res.skipped and res.changes == []
    res = apply(lab, desired, force=True)          # full check against the kernel
    TIMINGS["forced-recheck"] = res.seconds
    assert not res.skipped and res.changes == [], res.changes
    after = save(lab), save(lab, "nat"), nsexec(lab["h"], "ipset", "save").stdout
    strip = lambda t: [line for line in t.splitlines() if not line.startswith("#") and "initval" not in line]
    assert [strip(x) for x in before] == [strip(x) for x in after]


def test_policy_by_tag(lab):
    assert ping(lab["a"], B_IP) and ping(lab["b"], A_IP)          # same profile: allowed
    assert not ping(lab["c"], A_IP)                                # net2 -> net1: dropped inbound
    assert not ping(lab["a"], C_IP)                                # net1 -> net2: dropped inbound


def test_profile_change_is_reflected(lab):
    listener = subprocess.Popen(["ip", "netns", "exec", lab["a"], "busybox", "nc", "-ll", "-p", "8080",
                                 "-e", "echo", "hello-from-a"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.2)
        assert tcp(lab["b"], A_IP, 8080) == "hello-from-a"
        assert tcp(lab["c"], A_IP, 8080) is None
        rule = {"action": "allow", "protocol": "tcp", "src_tag": "net2", "dst_ports": [8080]}
        res = apply(lab, render(snapshot(profiles=[profile("net1", [rule]), profile("net2")]), HOST))
        TIMINGS["profile-change"] = res.seconds
        assert any("felix-p-net1-i" in c for c in res.changes)
        assert tcp(lab["c"], A_IP, 8080) == "hello-from-a"
        assert not ping(lab["c"], A_IP)                            # only tcp/8080 was opened
        assert "-A felix-p-net1-i -p tcp -m set --match-set felix-v4-net2 src -m multiport " \
               "--dports 8080 -j MARK --set-xmark 0x1000000/0x1000000" in save(lab)
    finally:
        listener.kill()
        listener.wait()


def test_wrong_source_mac_is_dropped(lab):
    c = lab["c"]
    sh("ip", "-n", c, "link", "set", "eth0", "address", "02:00:00:00:00:99")
    try:
        sh("ip", "-n", c, "neigh", "flush", "all")
        res = apply(lab, render(snapshot(endpoints=[endpoint(A_IF, A_IP, ["net1"]),
                                                    endpoint(C_IF, C_IP, ["net1"])]), HOST))
        assert res.ok
        assert not ping(c, A_IP)
        sh("ip", "-n", c, "link", "set", "eth0", "address", MAC)
        assert ping(c, A_IP)                                       # same profile, right MAC
    finally:
        sh("ip", "-n", c, "link", "set", "eth0", "address", MAC)


def test_removed_endpoint_and_stale_state_are_cleaned(lab):
    h = lab["h"]
    desired = render(snapshot(endpoints=[endpoint(A_IF, A_IP, ["net1"])],
                              profiles=[profile("net1")]), HOST)
    res = apply(lab, desired)
    TIMINGS["remove-endpoints"] = res.seconds
    filt = save(lab)
    assert ":felix-to-bbbb0000002" not in filt and ":felix-p-net2-i" not in filt
    assert ":felix-to-aaaa0000001 - " in filt
    routes = {(r["dst"], r["dev"]) for r in json.loads(nsexec(h, "ip", "-j", "route", "show").stdout)}
    assert (B_IP, B_IF) not in routes and (A_IP, A_IF) in routes
    neigh = json.loads(nsexec(h, "ip", "-j", "neigh", "show").stdout)
    assert not [n for n in neigh if n["dev"] == B_IF and "PERMANENT" in n["state"]]
    assert ipset_members(lab, "felix-v4-net1") == {A_IP}
    assert ipset_members(lab, "felix-v4-net2") is None            # destroyed once unreferenced
    assert not ping(lab["b"], A_IP)                                 # B's interface is unknown now
    # somebody else's leftovers in our name space are removed too, kernel jumps stay single
    nsexec(h, "iptables", "-w", "-N", "felix-stale-chain")
    nsexec(h, "iptables", "-w", "-I", "FORWARD", "2", "-j", "felix-FORWARD")
    nsexec(h, "ipset", "create", "felix-v4-stale", "hash:ip")
    res = apply(lab, desired, force=True)
    filt = save(lab)
    assert ":felix-stale-chain" not in filt
    assert [line for line in filt.splitlines() if line.startswith("-A FORWARD ")] == \
        ["-A FORWARD -j felix-FORWARD"]
    assert ipset_members(lab, "felix-v4-stale") is None


def test_missing_interface_is_retried(lab):
    ghost = "calighost000009"
    desired = render(snapshot(endpoints=[endpoint(A_IF, A_IP, ["net1"]),
                                         endpoint(ghost, "10.65.0.7", ["net1"])]), HOST)
    res = apply(lab, desired)
    assert res.pending == [ghost]
    assert apply(lab, desired).pending == [ghost]                   # not skipped while pending
    sh("ip", "-n", lab["h"], "link", "add", ghost, "type", "veth", "peer", "name", "ghostpeer")
    sh("ip", "-n", lab["h"], "link", "set", "ghostpeer", "up")
    sh("ip", "-n", lab["h"], "link", "set", ghost, "up")
    res = apply(lab, desired)
    assert res.pending == [] and f"route 10.65.0.7/32 dev {ghost}" in res.changes
    assert apply(lab, desired).skipped


def test_kernel_drift_is_repaired_at_refresh_not_by_datastore_changes(lab):
    """Felix 1.4 updates from what it wrote: a rule deleted by hand and a flushed ipset stay
    broken across unrelated datastore changes, until the IptablesRefreshInterval check."""
    now = [1000.0]
    dp = Dataplane(clock=lambda: now[0])
    run = lambda desired: lab["worker"].call(dp.apply, desired)
    two = [endpoint(A_IF, A_IP, ["net1"]), endpoint(C_IF, C_IP, ["net2"])]
    assert run(render(snapshot(endpoints=two), HOST)).ok              # the full first apply
    rule = "-A felix-p-net1-i -m set --match-set felix-v4-net1 src -j MARK --set-xmark 0x1000000/0x1000000"
    assert rule in save(lab)
    nsexec(lab["h"], "iptables", "-w", *rule.replace("-A ", "-D ", 1).split())
    nsexec(lab["h"], "ipset", "flush", "felix-v4-net1")
    now[0] += 5                                     # another endpoint joins net1
    res = run(render(snapshot(endpoints=[*two, endpoint(B_IF, B_IP, ["net1"])]), HOST))
    assert res.ok and any("felix-to-bbbb0000002" in c for c in res.changes), res.changes
    assert rule not in save(lab), "an unrelated change rewrote the profile chain"
    assert ipset_members(lab, "felix-v4-net1") == {B_IP}, "only the new member was added"
    assert not ping(lab["b"], A_IP)                 # the fault holds: net1 -> net1 dropped
    now[0] += 61                                    # IptablesRefreshInterval (60 s) elapsed
    res = run(render(snapshot(endpoints=[*two, endpoint(B_IF, B_IP, ["net1"])]), HOST))
    assert res.ok and rule in save(lab), res.changes
    assert ipset_members(lab, "felix-v4-net1") == {A_IP, B_IP}
    assert ping(lab["b"], A_IP)
    # a config change restarts real Felix, which starts over against the kernel
    nsexec(lab["h"], "ipset", "flush", "felix-v4-net1")
    now[0] += 1
    res = run(render(snapshot(endpoints=[*two, endpoint(B_IF, B_IP, ["net1"])],
                              host_config=(("IptablesRefreshInterval", "3600"),)), HOST))
    assert res.ok and ipset_members(lab, "felix-v4-net1") == {A_IP, B_IP}, res.changes


class MemoryDatastore:
    """snapshot() / wait_for_change(index, timeout) over an in-memory Snapshot."""

    def __init__(self, snap):
        self._snap = snap
        self._cond = threading.Condition()

    def set(self, snap):
        with self._cond:
            self._snap = model.Snapshot(**{**snap.__dict__, "etcd_index": self._snap.etcd_index + 1})
            self._cond.notify_all()

    def snapshot(self):
        with self._cond:
            return self._snap

    def wait_for_change(self, index, timeout):
        with self._cond:
            self._cond.wait_for(lambda: self._snap.etcd_index > index, timeout=timeout)
            return max(index, self._snap.etcd_index)


def test_agent_brings_a_change_to_the_kernel_within_a_second(lab):
    ds = MemoryDatastore(snapshot(endpoints=[endpoint(A_IF, A_IP, ["net1"])],
                                  profiles=[profile("net1")], index=100))
    stop = threading.Event()
    agent = Agent(ds, HOST, Dataplane(), poll_timeout=5.0)
    t = start_thread_in_netns(lab["h"], agent.run_forever, stop)
    try:
        deadline = time.monotonic() + 5
        while agent.applies == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert agent.applies > 0 and agent.last_result.ok
        rule = {"action": "allow", "protocol": "udp", "src_tag": "net1", "dst_ports": [5353]}
        started = time.monotonic()
        ds.set(snapshot(endpoints=[endpoint(A_IF, A_IP, ["net1"])],
                        profiles=[profile("net1", [rule])]))
        while "--dports 5353" not in save(lab):
            assert time.monotonic() - started < 1.0, "change not in the kernel after 1 s"
            time.sleep(0.01)
        TIMINGS["agent-latency"] = time.monotonic() - started
    finally:
        stop.set()
        t.join(timeout=10)
    assert not t.is_alive()
