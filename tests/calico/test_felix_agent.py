"""Agent loop with an in-memory datastore and a recording dataplane (no kernel)."""
from __future__ import annotations

import io
import logging
import threading
import time

from lab.calico import model
from lab.calico.felix.agent import Agent, configure_logging
from lab.calico.felix.dataplane import ApplyResult


class Store:
    def __init__(self, snap):
        self.snap = snap
        self.cond = threading.Condition()
        self.snapshots = 0
        self.fail_next = 0

    def update(self, **changes):
        with self.cond:
            self.snap = model.Snapshot(**{**self.snap.__dict__, **changes,
                                          "etcd_index": self.snap.etcd_index + 1})
            self.cond.notify_all()

    def snapshot(self):
        with self.cond:
            self.snapshots += 1
            if self.fail_next:
                self.fail_next -= 1
                raise ConnectionError("etcd unreachable")
            return self.snap

    def wait_for_change(self, index, timeout):
        with self.cond:
            self.cond.wait_for(lambda: self.snap.etcd_index > index, timeout=timeout)
            return max(index, self.snap.etcd_index)

    def report_felix_status(self, hostname, status, ttl):
        self.reports = getattr(self, "reports", 0) + 1


class Recorder:
    def __init__(self):
        self.applied = []
        self.results = []          # queued results to return
        self.event = threading.Event()

    def apply(self, desired, force=False):
        self.applied.append(desired)
        self.event.set()
        if self.results:
            r = self.results.pop(0)
            if isinstance(r, Exception):
                raise r
            return r
        return ApplyResult(changes=["x"])


def profile(rules=({"action": "allow"},)):
    return model.Profile("net1", ("net1",), tuple(rules), ({"action": "allow"},))


def ep():
    return model.Endpoint("n1", "libnetwork", "libnetwork", "a" * 64, "caliaaaaaaaaaaa",
                          "EE:EE:EE:EE:EE:EE", ("net1",), ("10.65.0.1/32",))


def wait(pred, timeout=3.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def run(agent):
    stop = threading.Event()
    t = threading.Thread(target=agent.run_forever, args=(stop,), daemon=True)
    t.start()
    return stop, t


def halt(store, stop, t):
    stop.set()
    store.update()             # wake the long poll
    t.join(5)
    assert not t.is_alive()


def test_waits_for_ready_then_applies_and_follows_changes():
    store = Store(model.Snapshot(etcd_index=5, ready=False))
    dp = Recorder()
    agent = Agent(store, "n1", dp, poll_timeout=5.0)
    stop, t = run(agent)
    try:
        time.sleep(0.2)
        assert dp.applied == []
        store.update(ready=True, profiles=(profile(),), endpoints=(ep(),))
        wait(lambda: len(dp.applied) == 1)
        assert dp.applied[0].endpoints[0].iface == "caliaaaaaaaaaaa"
        started = time.monotonic()
        store.update(profiles=(profile([{"action": "deny"}]),))
        wait(lambda: len(dp.applied) == 2)
        assert time.monotonic() - started < 1.0
        assert dp.applied[1].chain("felix-p-net1-i") == ("--append felix-p-net1-i --jump DROP",)
    finally:
        halt(store, stop, t)


def test_errors_are_logged_and_retried_never_crash():
    store = Store(model.Snapshot(etcd_index=1, ready=True, profiles=(profile(),), endpoints=(ep(),)))
    store.fail_next = 2
    dp = Recorder()
    dp.results = [RuntimeError("boom"), ApplyResult(errors=["iptables nat: failed"]), ApplyResult()]
    buf = io.StringIO()
    configure_logging(buf)
    try:
        agent = Agent(store, "n1", dp, poll_timeout=5.0, error_retry=0.05, error_backoff=0.05)
        stop, t = run(agent)
        try:
            wait(lambda: len(dp.applied) >= 3)
        finally:
            halt(store, stop, t)
        out = buf.getvalue()
        assert "felix: error (will retry): ConnectionError: etcd unreachable" in out
        assert "felix: error (will retry): RuntimeError: boom" in out
        assert "felix: error (will retry): iptables nat: failed" in out
        assert "felix: dataplane in sync again" in out
        assert all(line.startswith("felix: ") for line in out.splitlines())
    finally:
        logging.getLogger("felix").handlers.clear()


def test_pending_interfaces_poll_quickly_and_unchanged_snapshots_are_reused():
    store = Store(model.Snapshot(etcd_index=1, ready=True, profiles=(profile(),), endpoints=(ep(),)))
    dp = Recorder()
    dp.results = [ApplyResult(pending=["caliaaaaaaaaaaa"])] * 3 + [ApplyResult()]
    agent = Agent(store, "n1", dp, poll_timeout=5.0, retry_timeout=0.05)
    stop, t = run(agent)
    try:
        wait(lambda: len(dp.applied) >= 4, timeout=2.0)     # retries without any etcd change
        assert store.snapshots == 1
    finally:
        halt(store, stop, t)


def test_step_is_usable_without_the_loop():
    dp = Recorder()
    agent = Agent(None, "n1", dp)
    index, res = agent.step(model.Snapshot(etcd_index=9, ready=True))
    assert index == 9 and res.changes == ["x"] and agent.applies == 1
    assert agent.step(model.Snapshot(etcd_index=10))[1] is None


def test_pending_fast_polling_stops_after_a_while():
    agent = Agent(None, "n1", Recorder(), poll_timeout=1.0, retry_timeout=0.25,
                  pending_fast_period=0.1)
    pending = ApplyResult(pending=["caliaaaaaaaaaaa"])
    assert agent._timeout_after(pending) == 0.25
    time.sleep(0.15)
    assert agent._timeout_after(pending) == 1.0
    assert agent._timeout_after(ApplyResult(pending=["calibbbbbbbbbbb"])) == 0.25
    assert agent._timeout_after(ApplyResult(errors=["x"])) == 1.0
    assert agent._timeout_after(ApplyResult()) == 1.0
