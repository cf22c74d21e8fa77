"""The Felix loop: wait for /calico/v1/Ready, then snapshot -> render -> apply -> long-poll.

The datastore needs three methods: snapshot() -> model.Snapshot,
wait_for_change(index, timeout) -> int (returns when something changed after `index`, or
after `timeout` seconds) and report_felix_status(hostname, status, ttl). Errors are logged and retried; the loop only ends on stop_event.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Mapping

from .dataplane import ApplyResult, Dataplane
from .render import render

log = logging.getLogger("felix")

# env variables that configure the process, not Felix parameters
_NOT_CONFIG = {"FELIXHOSTNAME", "ETCDADDR", "ETCDENDPOINTS", "ETCDSCHEME", "ETCDKEYFILE",
               "ETCDCERTFILE", "ETCDCAFILE"}


def configure_logging(stream=None, level=logging.INFO) -> None:
    """Concise "felix: …" lines on stdout."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(logging.Formatter("felix: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def _summary(items, limit=6) -> str:
    items = list(items)
    text = "; ".join(items[:limit])
    return text + (f"; … (+{len(items) - limit})" if len(items) > limit else "")


class Agent:
    def __init__(self, datastore, hostname: str, dataplane: Dataplane | None = None,
                 overrides: Mapping[str, str] | None = None, poll_timeout: float = 1.0,
                 retry_timeout: float = 0.25, error_retry: float = 1.0, error_backoff: float = 0.5,
                 resnapshot_interval: float = 10.0, pending_fast_period: float = 5.0):
        self.datastore = datastore
        self.hostname = hostname
        self.dataplane = dataplane or Dataplane()
        self.overrides = dict(overrides or {})
        self.poll_timeout = poll_timeout
        self.retry_timeout = retry_timeout
        self.error_backoff = error_backoff
        self.resnapshot_interval = resnapshot_interval
        self.error_retry = error_retry
        self.pending_fast_period = pending_fast_period
        self._pending_since: tuple[tuple[str, ...], float] = ((), 0.0)
        self.applies = 0                 # completed apply() calls (for tests and status)
        self.last_result: ApplyResult | None = None
        self._last_error: tuple[str, float] | None = None
        self._last_pending: tuple[str, ...] = ()
        self._last_warnings: tuple[str, ...] = ()
        self.config = None               # the FelixConfig of the last render
        self._started = time.monotonic()
        self._reported_at: float | None = None

    # -- one iteration ------------------------------------------------------------------
    def step(self, snapshot=None) -> tuple[int, ApplyResult | None]:
        """Snapshot (unless given) -> render -> apply. Returns (etcd index, result or None
        while the datastore is not Ready)."""
        snap = snapshot if snapshot is not None else self.datastore.snapshot()
        if not snap.ready:
            return snap.etcd_index, None
        desired = render(snap, self.hostname, self.overrides)
        self.config = desired.config
        if desired.warnings != self._last_warnings:
            for w in desired.warnings:
                if w not in self._last_warnings:
                    log.warning("%s", w)
            self._last_warnings = desired.warnings
        result = self.dataplane.apply(desired)
        self.applies += 1
        self.last_result = result
        self._report(snap.etcd_index, result)
        return snap.etcd_index, result

    def _report(self, index: int, result: ApplyResult) -> None:
        if result.changes:
            log.info("applied index %s in %.0f ms: %s", index, result.seconds * 1000,
                     _summary(result.changes))
        pending = tuple(result.pending)
        if pending != self._last_pending:
            if pending:
                log.info("waiting for interface(s) %s", ", ".join(pending))
            self._last_pending = pending
        if result.errors:
            self._error(_summary(result.errors, 3))
        elif self._last_error is not None:
            log.info("dataplane in sync again")
            self._last_error = None

    def _error(self, text: str) -> None:
        now = time.monotonic()
        if self._last_error is None or self._last_error[0] != text or now - self._last_error[1] > 30:
            log.error("error (will retry): %s", text)
            self._last_error = (text, now)

    def report_status(self) -> bool:
        """Felix 1.4's status report (fetcd.py): every ReportingIntervalSecs (0: never, what
        calicoctl configures), /calico/felix/v1/host/<host>/status with a TTL of
        ReportingTTLSecs and last_reported_status without one. True when it wrote them."""
        cfg = self.config
        if cfg is None or cfg.reporting_interval <= 0:
            return False
        now = time.monotonic()
        if self._reported_at is not None and now - self._reported_at < cfg.reporting_interval:
            return False
        status = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "uptime": round(now - self._started, 1),
                  "first_update": self._reported_at is None}
        self.datastore.report_felix_status(self.hostname, status, cfg.reporting_ttl)
        self._reported_at = now
        return True

    def _timeout_after(self, result: ApplyResult) -> float:
        """Missing interfaces are looked for every retry_timeout for pending_fast_period s
        (a new container's veth), then at the normal pace; failures retry every error_retry."""
        if result.errors:
            return min(self.error_retry, self.poll_timeout)
        if result.pending:
            pending = tuple(result.pending)
            if pending != self._pending_since[0]:
                self._pending_since = (pending, time.monotonic())
            if time.monotonic() - self._pending_since[1] < self.pending_fast_period:
                return self.retry_timeout
        else:
            self._pending_since = ((), 0.0)
        return self.poll_timeout

    # -- the loop -----------------------------------------------------------------------
    def run_forever(self, stop_event: threading.Event) -> None:
        log.info("starting on host %s", self.hostname)
        waiting_logged = False
        snap, snap_at, changed = None, 0.0, True
        while not stop_event.is_set():
            try:
                # wait_for_change returns the index it was given on timeout: nothing changed,
                # so the last snapshot is reused (re-read anyway every resnapshot_interval)
                if changed or snap is None or time.monotonic() - snap_at > self.resnapshot_interval:
                    snap, snap_at = None, time.monotonic()
                    snap = self.datastore.snapshot()
                if snap.ready and waiting_logged:
                    log.info("datastore ready")
                    waiting_logged = False
                index, result = self.step(snap)
                if result is None:
                    if not waiting_logged:
                        log.info("waiting for /calico/v1/Ready")
                        waiting_logged = True
                    timeout = self.poll_timeout
                else:
                    timeout = self._timeout_after(result)
                    self.report_status()
                    if self.config is not None and self.config.reporting_interval > 0:
                        timeout = min(timeout, self.config.reporting_interval)
                if stop_event.is_set():
                    break
                changed = self.datastore.wait_for_change(index, timeout=timeout) != index
            except Exception as exc:                     # noqa: BLE001 - never crash the loop
                self._error(f"{type(exc).__name__}: {exc}")
                changed = True
                stop_event.wait(self.error_backoff)
        log.info("stopped")


def main() -> int:
    configure_logging()
    env = os.environ
    hostname = env.get("FELIX_FELIXHOSTNAME") or env.get("HOSTNAME") or socket.gethostname()
    overrides = {k[len("FELIX_"):]: v for k, v in env.items()
                 if k.startswith("FELIX_") and k[len("FELIX_"):].upper() not in _NOT_CONFIG}
    # calico/node passes the etcd location to Felix as FELIX_ETCD*; libcalico reads ETCD_*
    ds_env = dict(env)
    for felix_name, name in (("FELIX_ETCDENDPOINTS", "ETCD_ENDPOINTS"),
                             ("FELIX_ETCDADDR", "ETCD_AUTHORITY"),
                             ("FELIX_ETCDSCHEME", "ETCD_SCHEME")):
        if felix_name in env and not any(k in env for k in ("ETCD_ENDPOINTS", "ETCD_AUTHORITY")):
            ds_env.setdefault(name, env[felix_name])
    try:
        from lab.calico.datastore import Datastore
        datastore = Datastore.from_env(ds_env)
    except Exception as exc:                             # noqa: BLE001
        log.error("cannot open the datastore: %s", exc)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    Agent(datastore, hostname, Dataplane(), overrides).run_forever(stop)
    return 0
