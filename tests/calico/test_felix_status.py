"""The reference Felix's status reports (Felix 1.4 fetcd.py) in a real etcd, read back the way
the bootstrap suite reads them (fixtures.facts.felix_status)."""
from __future__ import annotations

import threading
import time

from lab.calico import model
from lab.calico.datastore import Datastore
from lab.calico.felix.agent import Agent

from fixtures.facts.felix_status import read_status, status_problem

from .test_felix_agent import Recorder, halt, run, wait


class Store(Datastore):
    """The real datastore for reports, a fixed snapshot for the loop (no lab, no kernel)."""

    def __init__(self, client, snap):
        super().__init__(client)
        self.snap, self.cond = snap, threading.Condition()

    def snapshot(self):
        return self.snap

    def wait_for_change(self, index, timeout):
        with self.cond:
            self.cond.wait(timeout)
        return index

    def update(self):
        with self.cond:
            self.cond.notify_all()


def _snap(interval: str) -> model.Snapshot:
    return model.Snapshot(etcd_index=1, ready=True, config=(("ReportingIntervalSecs", interval),
                                                            ("ReportingTTLSecs", "30")))


def test_reports_every_interval_with_a_ttl_then_go_stale_when_felix_stops(etcd_client):
    store = Store(etcd_client, _snap("1"))
    stop, t = run(Agent(store, "node1", Recorder(), poll_timeout=5.0))
    try:
        wait(lambda: read_status(etcd_client, "node1").status is not None)
        first = read_status(etcd_client, "node1")
        assert first.status["first_update"] is True and first.ttl_left <= 30
        wait(lambda: read_status(etcd_client, "node1").status["first_update"] is False, timeout=4)
        assert status_problem(read_status(etcd_client, "node1"), 1, 30) is None
    finally:
        halt(store, stop, t)
    time.sleep(8)                 # a stopped Felix: the report ages (etcd counts the TTL down)
    stale = read_status(etcd_client, "node1")
    assert status_problem(stale, 1, 30).startswith("Felix on node1 last reported ")
    assert stale.last is not None and stale.last["time"] == stale.status["time"]


def test_no_reports_with_calicoctls_interval_of_zero(etcd_client):
    store = Store(etcd_client, _snap("0"))
    agent = Agent(store, "node1", Recorder(), poll_timeout=0.2)
    stop, t = run(agent)
    try:
        wait(lambda: agent.applies >= 1)
        time.sleep(0.5)
    finally:
        halt(store, stop, t)
    assert read_status(etcd_client, "node1").status is None
    assert "and never did" in status_problem(read_status(etcd_client, "node1"), 30, 90)
