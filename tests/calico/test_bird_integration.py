"""Real BGP between BIRD 1.6 processes running rendered configs, in throwaway namespaces.

Every namespace is named cftest-b<pid>-<name>, created by the `fabric` fixture and always
deleted by it: one namespace holds a bridge, one per node holds the node's `eth0` on that
bridge. No default routes, nothing in the root namespace. Timings are printed (`-s`) and
recorded as JUnit properties.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import etcd
import pytest

from lab.calico import model
from lab.calico.bird import status
from lab.calico.bird.config import render_node_config, render_rr_config
from lab.calico.bird.confd import Confd, RouteReflectorConfd, birdc

BIRD = shutil.which("bird") or "/usr/sbin/bird"
pytestmark = [
    pytest.mark.lab,     # root only (tests/conftest.py skips it otherwise)
    pytest.mark.skipif(not os.path.exists(BIRD), reason="BIRD 1.6 is not installed"),
]
TAG = f"cftest-b{os.getpid()}"
POOL = "192.168.0.0/16"
SUBNET = "10.77.0"


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=30)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_namespaces() -> None:
    """Namespaces an earlier, crashed run of this module left behind (its pid is gone)."""
    for line in sh("ip", "netns", "list").stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(r"cftest-b(\d+)-\w+", name)
        if m and not _pid_alive(int(m.group(1))):
            for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
                os.kill(int(pid), signal.SIGKILL)
            sh("ip", "netns", "del", name, check=False)


@dataclasses.dataclass
class Bird:
    name: str
    ns: str
    ip: str
    ctl: str
    log: Path
    proc: subprocess.Popen | None = None

    def protocols(self) -> dict[str, status.ProtocolRow]:
        try:
            res = birdc(self.ctl, "show", "protocols", timeout=5)
            return {r.name: r for r in status.parse_protocols(res.stdout)}
        except (ValueError, OSError, subprocess.TimeoutExpired):
            return {}

    def routes(self) -> list[dict]:
        return json.loads(sh("ip", "-n", self.ns, "-j", "route").stdout or "[]")

    def learned(self) -> set[tuple[str, str]]:
        """(prefix, gateway) of the BGP routes BIRD installed in the node's kernel."""
        return {(r["dst"], r.get("gateway", "")) for r in self.routes()
                if r.get("protocol") == "bird" and r.get("type") != "blackhole"}

    def blackholes(self) -> set[str]:
        return {r["dst"] for r in self.routes() if r.get("type") == "blackhole"}

    def ups(self) -> dict[str, int]:
        """How often each BGP protocol went up, from BIRD's `debug { states }` log."""
        counts: dict[str, int] = {}
        for m in re.finditer(r"(\w+_\w+): State changed to up", self.log.read_text()):
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
        return counts


class Fabric:
    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.namespaces: list[str] = []
        self.birds: dict[str, Bird] = {}
        self.br = self._netns("br")
        sh("ip", "-n", self.br, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.br, "link", "set", "br0", "up")

    def _netns(self, name: str) -> str:
        ns = f"{TAG}-{name}"
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        return ns

    def node(self, name: str, ip: str) -> Bird:
        ns = self._netns(name)
        sh("ip", "-n", self.br, "link", "add", f"v-{name}", "type", "veth",
           "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", self.br, "link", "set", f"v-{name}", "master", "br0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        bird = Bird(name, ns, ip, str(self.dir / f"{name}.ctl"), self.dir / f"{name}.log")
        self.birds[name] = bird
        return bird

    def start(self, bird: Bird, text: str, *flags: str) -> None:
        cfg = self.dir / f"{bird.name}.cfg"
        cfg.write_text(text)
        with open(bird.log, "w") as log:
            bird.proc = subprocess.Popen(["ip", "netns", "exec", bird.ns, BIRD, *flags, "-d", "-c",
                                          str(cfg), "-s", bird.ctl], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)

    def close(self) -> None:
        procs = [b.proc for b in self.birds.values() if b.proc is not None]
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        for ns in reversed(self.namespaces):
            # safety net: anything still running in our namespaces was started by this test
            for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            sh("ip", "netns", "del", ns, check=False)


@pytest.fixture
def fabric(tmp_path):
    _remove_stale_namespaces()
    fab = Fabric(tmp_path)
    try:
        yield fab
    finally:
        fab.close()
    left = [n for n in sh("ip", "netns", "list").stdout.split() if n.startswith(TAG)]
    assert not left, f"namespaces left behind: {left}"


def nodes_snapshot(names: list[str], **kw) -> model.Snapshot:
    """Hosts node i at 10.77.0.<i+1>, each affine to block 192.168.<i>.0/26."""
    base = dict(hosts=tuple(model.Host(n, f"{SUBNET}.{i + 1}", f"{SUBNET}.{i + 1}")
                            for i, n in enumerate(names)),
                pools=(model.Pool(POOL),),
                affinities=tuple((n, f"192.168.{i}.0/26") for i, n in enumerate(names)))
    base.update(kw)
    return model.Snapshot(**base)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def expected_learned(snapshot: model.Snapshot, hostname: str) -> set[tuple[str, str]]:
    me = snapshot.host(hostname)
    return {(cidr, snapshot.host(h).ip_addr_v4) for h, cidr in snapshot.affinities if h != me.hostname}


def converged(birds: list[Bird], snapshot: model.Snapshot, prefix: str = "Mesh_") -> bool:
    for b in birds:
        sessions = [r for name, r in b.protocols().items() if name.startswith(prefix)]
        if not sessions or any(r.info != "Established" for r in sessions):
            return False
        if b.learned() != expected_learned(snapshot, b.name):
            return False
    return True


def report(name: str, seconds: float, **extra) -> None:
    """Convergence figures are printed (-s shows them), never asserted: benchmarks measure speed."""
    detail = "".join(f" {k}={v}" for k, v in extra.items())
    print(f"\n[bird] {name}: {seconds:.2f}s{detail}")


# -- plain BIRDs with rendered configs ------------------------------------------------------------

@pytest.mark.slow
def test_mesh_converges_without_flaps_when_all_birds_start_at_once(fabric):
    names = ["a", "b", "c"]
    snapshot = nodes_snapshot(names)
    birds = [fabric.node(n, f"{SUBNET}.{i + 1}") for i, n in enumerate(names)]
    t0 = time.monotonic()
    for b in birds:
        fabric.start(b, render_node_config(snapshot, b.name, b.ip))
    wait_for(lambda: converged(birds, snapshot), 20, "a 3-node mesh with all routes learned")
    took = time.monotonic() - t0
    time.sleep(3)                               # would a collision still tear a session down?
    assert converged(birds, snapshot)
    flaps = {b.name: {p: n for p, n in b.ups().items() if n != 1} for b in birds}
    report("mesh3_converged", took, flaps=flaps)
    assert all(not f for f in flaps.values()), f"sessions went up more than once: {flaps}"
    for i, b in enumerate(birds):
        assert b.blackholes() == {f"192.168.{i}.0/26"}
        assert all(r.get("dev") == "eth0" for r in b.routes() if r.get("gateway"))
    # `calicoctl status` on node b, from BIRD's real output
    table = status.bgp_table(birdc(birds[1].ctl, "show", "protocols").stdout)
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()
            if line.startswith("| ") and "Peer address" not in line]
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [
        (f"{SUBNET}.1", "node-to-node mesh", "up", "Established"),
        (f"{SUBNET}.3", "node-to-node mesh", "up", "Established")]


@pytest.mark.slow
def test_released_template_without_passive_still_converges(fabric):
    """Feasibility G11 measured again: the template as released (no `passive`), all BIRDs
    started together. Connection collisions cost seconds and flaps; it must still converge."""
    names = ["a", "b", "c"]
    snapshot = nodes_snapshot(names)
    birds = [fabric.node(n, f"{SUBNET}.{i + 1}") for i, n in enumerate(names)]
    t0 = time.monotonic()
    for b in birds:
        fabric.start(b, render_node_config(snapshot, b.name, b.ip, passive=False))
    wait_for(lambda: converged(birds, snapshot), 60, "the released template to converge")
    took = time.monotonic() - t0
    extra_ups = sum(n - 1 for b in birds for n in b.ups().values())
    report("mesh3_released_template_converged", took, extra_ups=extra_ups)


@pytest.mark.slow
def test_route_reflector_reflects_blocks_between_nodes(fabric):
    rr_ip = f"{SUBNET}.10"
    snapshot = nodes_snapshot(["a", "b"], node_mesh=False,
                              route_reflectors=(model.RouteReflector(rr_ip, "1.0.0.1"),),
                              global_peers_v4=(model.Peer(rr_ip, "64511"),))
    a, b = fabric.node("a", f"{SUBNET}.1"), fabric.node("b", f"{SUBNET}.2")
    rr = fabric.node("rr", rr_ip)
    t0 = time.monotonic()
    fabric.start(rr, render_rr_config(snapshot, rr_ip))
    for n in (a, b):
        fabric.start(n, render_node_config(snapshot, n.name, n.ip))
    wait_for(lambda: converged([a, b], snapshot, prefix="Global_"), 20,
             "both nodes to learn the other's block through the route reflector")
    took = time.monotonic() - t0
    time.sleep(2)
    flaps = {n.name: {p: k for p, k in n.ups().items() if k != 1} for n in (a, b)}
    report("rr_converged", took, flaps=flaps)
    assert all(not f for f in flaps.values()), f"sessions went up more than once: {flaps}"
    rr_sessions = rr.protocols()
    assert {n: r.info for n, r in rr_sessions.items() if r.proto == "BGP"} == {
        "Global_10_77_0_1": "Established", "Global_10_77_0_2": "Established"}
    assert rr.routes() == [r for r in rr.routes() if r.get("protocol") != "bird"], \
        "the route reflector must not install routes (no kernel protocol)"
    assert [n for n in a.protocols() if n.startswith(("Mesh_", "Node_"))] == []


@pytest.mark.slow
def test_recovery_flag_holds_routes_while_a_peer_is_unreachable(fabric):
    """`bird -R` (how calico/node starts BIRD): graceful-restart recovery waits for every
    BGP session with graceful restart. One unreachable global peer therefore keeps the
    restarted node from installing learned routes *and* from advertising its own block for up
    to 240 s (`graceful restart wait`), although the mesh session is Established; its
    protocols show state `wait` (what `calicoctl status` prints). Pinned here because it is
    2016 behaviour a suite may trip over after restarting calico-node."""
    snapshot = nodes_snapshot(["a", "b"], global_peers_v4=(model.Peer(f"{SUBNET}.99", "64511"),))
    a, b = fabric.node("a", f"{SUBNET}.1"), fabric.node("b", f"{SUBNET}.2")
    fabric.start(a, render_node_config(snapshot, "a", a.ip), "-R")
    fabric.start(b, render_node_config(snapshot, "b", b.ip))
    info = lambda n, peer: getattr(n.protocols().get(peer), "info", None)
    wait_for(lambda: info(a, "Mesh_10_77_0_2") == "Established", 20, "the mesh session")
    wait_for(lambda: info(b, "Mesh_10_77_0_1") == "Established", 5, "the mesh session on b")
    time.sleep(3)                                           # more than one kernel scan
    assert a.learned() == set() and b.learned() == set()
    assert a.protocols()["kernel1"].state == "wait"
    assert a.protocols()["Mesh_10_77_0_2"].state == "wait"
    assert "Graceful restart recovery in progress" in birdc(a.ctl, "show", "status").stdout


# -- confd driving BIRD ---------------------------------------------------------------------------

class FakeDatastore:
    """Datastore.snapshot / wait_for_change over an in-memory Snapshot."""

    def __init__(self, snapshot: model.Snapshot) -> None:
        self._snap = dataclasses.replace(snapshot, etcd_index=1)
        self._cond = threading.Condition()

    def set(self, snapshot: model.Snapshot) -> None:
        with self._cond:
            self._snap = dataclasses.replace(snapshot, etcd_index=self._snap.etcd_index + 1)
            self._cond.notify_all()

    def snapshot(self) -> model.Snapshot:
        with self._cond:
            return self._snap

    def wait_for_change(self, index: int, timeout: float) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self._snap.etcd_index > index, timeout)
            return self._snap.etcd_index


@pytest.fixture
def confds():
    started: list = []
    yield started
    for c in started:
        c.stop()


@pytest.mark.slow
def test_confd_starts_bird_and_reconfigures_it_on_change(fabric, confds, tmp_path):
    names = ["a", "b"]
    full = nodes_snapshot(names)
    first = dataclasses.replace(full, affinities=full.affinities[:1])   # b has no block yet
    ds = FakeDatastore(first)
    logs: list[str] = []
    birds = [fabric.node(n, f"{SUBNET}.{i + 1}") for i, n in enumerate(names)]
    t0 = time.monotonic()
    for b in birds:
        c = Confd(ds, b.name, b.ip, str(tmp_path / b.name / "bird.cfg"), b.ctl,
                  bird_argv_prefix=["ip", "netns", "exec", b.ns], interval=1, log=logs.append,
                  bird_output=open(b.log, "w"))
        confds.append(c.start())
    wait_for(lambda: converged(birds, ds.snapshot()), 20, "confd-started BIRDs to converge")
    report("confd_mesh2_converged", time.monotonic() - t0)
    a_confd, b_confd = confds
    assert a_confd.bird_pid and b_confd.bird_pid
    assert Path(a_confd.conf_path).read_text() == render_node_config(first, "a", birds[0].ip)
    assert all(line.startswith("confd: ") for line in logs)

    # a new block for b: b's confd rewrites bird.cfg and reloads BIRD, a learns the /26
    pid_before = b_confd.bird_pid
    t1 = time.monotonic()
    ds.set(full)
    wait_for(lambda: converged(birds, full), 20, "a to learn b's new block after a reload")
    report("confd_block_added_to_route_learned", time.monotonic() - t1)
    assert b_confd.bird_pid == pid_before, "a change must reload BIRD, not restart it"
    assert any("Reconfigured" in line for line in logs), logs

    # a config BIRD rejects (two hosts on one IP → duplicate protocol names) is not applied
    dup = dataclasses.replace(full, hosts=full.hosts + (model.Host("z", None, birds[1].ip),))
    before = Path(a_confd.conf_path).read_text()
    ds.set(dup)
    wait_for(lambda: a_confd.last_error, 10, "confd to report the failed check")
    assert "Symbol already defined" in a_confd.last_error
    assert Path(a_confd.conf_path).read_text() == before
    assert not list(Path(a_confd.conf_path).parent.glob(".bird.cfg.*")), "staged file left behind"
    ds.set(full)

    # BIRD dies: confd starts a new one on its next pass
    os.kill(a_confd.bird_pid, signal.SIGKILL)
    t2 = time.monotonic()
    wait_for(lambda: a_confd.bird_pid not in (None, pid_before) and converged(birds, full), 30,
             "confd to restart a dead BIRD and the mesh to come back")
    report("confd_bird_restarted_and_reconverged", time.monotonic() - t2)

    for c in confds:
        c.stop()
    assert a_confd.bird_pid is None and b_confd.bird_pid is None
    # persist: routes stay in the kernel after BIRD stops
    assert ("192.168.1.0/26", birds[1].ip) in birds[0].learned()


@pytest.mark.slow
def test_route_reflector_confd_waits_for_its_rr_key(fabric, confds, tmp_path):
    rr_ip = f"{SUBNET}.10"
    plain = nodes_snapshot(["a", "b"], node_mesh=False, global_peers_v4=(model.Peer(rr_ip, "64511"),))
    ds = FakeDatastore(plain)
    a, b = fabric.node("a", f"{SUBNET}.1"), fabric.node("b", f"{SUBNET}.2")
    rr = fabric.node("rr", rr_ip)
    rr_confd = RouteReflectorConfd(ds, rr_ip, str(tmp_path / "rr" / "bird.cfg"), rr.ctl,
                                   bird_argv_prefix=["ip", "netns", "exec", rr.ns], interval=1,
                                   log=lambda m: None, bird_output=open(rr.log, "w"))
    confds.append(rr_confd.start())
    for n in (a, b):
        fabric.start(n, render_node_config(plain, n.name, n.ip))
    wait_for(lambda: rr_confd.bird_pid and rr.protocols(), 10, "the RR's BIRD to answer")
    assert [r.proto for r in rr.protocols().values()] == ["Device"]
    t0 = time.monotonic()
    with_rr = dataclasses.replace(plain, route_reflectors=(model.RouteReflector(rr_ip),))
    ds.set(with_rr)
    wait_for(lambda: converged([a, b], with_rr, prefix="Global_"), 30,
             "nodes to learn each other's block once the rr_v4 key exists")
    report("rr_key_written_to_routes_reflected", time.monotonic() - t0)



@pytest.mark.slow
def test_confd_follows_the_real_datastore(fabric, confds, etcd_client, tmp_path):
    """Confd over lab.calico.datastore.Datastore and a private etcd (tests/calico/conftest.py):
    etcd writes → watch → bird.cfg → BIRD → kernel, for a mesh of two nodes."""
    from lab.calico.datastore import Datastore

    def put(key, value):
        etcd_client.write(key, value)

    put("/calico/bgp/v1/global/as_num", "64511")
    put("/calico/bgp/v1/global/node_mesh", '{"enabled": true}')
    put("/calico/v1/ipam/v4/pool/192.168.0.0-16", '{"cidr": "192.168.0.0/16"}')
    birds = [fabric.node(n, f"{SUBNET}.{i + 1}") for i, n in enumerate(["a", "b"])]
    for i, b in enumerate(birds):
        put(f"/calico/bgp/v1/host/{b.name}/ip_addr_v4", b.ip)
        put(f"/calico/ipam/v2/host/{b.name}/ipv4/block/192.168.{i}.0-26", "")
    host, port = etcd_client.host, etcd_client.port
    t0 = time.monotonic()
    for b in birds:
        ds = Datastore(etcd.Client(host=host, port=port, read_timeout=10))
        c = Confd(ds, b.name, b.ip, str(tmp_path / b.name / "bird.cfg"), b.ctl,
                  bird_argv_prefix=["ip", "netns", "exec", b.ns], interval=5, log=lambda m: None,
                  bird_output=open(b.log, "w"))
        confds.append(c.start())
    snapshot = Datastore(etcd_client).snapshot()
    wait_for(lambda: converged(birds, snapshot), 20, "the confd-driven mesh over etcd")
    report("etcd_confd_mesh2_converged", time.monotonic() - t0)

    # a second block for b, written to etcd: a learns it (watch, not the 5 s interval)
    t1 = time.monotonic()
    put("/calico/ipam/v2/host/b/ipv4/block/192.168.7.0-26", "")
    wait_for(lambda: ("192.168.7.0/26", birds[1].ip) in birds[0].learned(), 10,
             "a to learn b's new block from an etcd write")
    took = time.monotonic() - t1
    report("etcd_block_write_to_route_learned", took)
    assert took < 4, "confd must react to the etcd watch, not only to its interval"
    assert "192.168.7.0/26" in birds[1].blackholes()
