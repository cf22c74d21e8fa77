"""confd-style watchers: datastore → bird.cfg → BIRD (spec §6.1, §6.6).

One loop per BIRD: take a snapshot, render, and when the text differs from the file, stage
it beside the target, check it with `bird -p -c` (confd's check_cmd), move it into place and
then either start BIRD (first time) or ask the running one to reload (`birdc configure`,
where the 2016 node sent SIGHUP). A config that fails the check is logged and dropped: the
previous file and BIRD keep running, as with confd. Then wait for the next datastore change
(or `interval` seconds, confd's `-interval=5`) and go round again.

BIRD runs in the foreground (`bird -R -s <ctl> -d -c <conf>`) as our child, in our process
group, so whoever stops this process group stops BIRD too. `-R` (graceful restart recovery,
as calico/node ran it) has a cost worth knowing: after a (re)start the kernel protocol
exports nothing until every BGP session with graceful restart has converged, or for up to
240 s (`graceful restart wait`) while any configured peer is unreachable.
`recovery=False` drops `-R`. If BIRD dies it is restarted on
the next pass; a BIRD left running on the same control socket by an earlier confd is adopted
(reconfigured) instead of a second one being started.

Log lines start with "confd:".
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Sequence

from .. import model
from .config import render_node_config, render_rr_config

BIRD = "bird"
BIRDC = "birdc"


def _stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def birdc(ctl_socket: str, *command: str, argv_prefix: Sequence[str] = (), timeout: float = 10,
          birdc_path: str = BIRDC) -> subprocess.CompletedProcess:
    """Run one birdc command against a control socket (never raises on a non-zero exit)."""
    return subprocess.run([*argv_prefix, birdc_path, "-s", ctl_socket, *command],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


class _BirdConfd:
    """Shared machinery; subclasses say how to render."""

    def __init__(self, datastore, conf_path: str, ctl_socket: str,
                 bird_argv_prefix: Sequence[str] = (), bird: str = BIRD, birdc_path: str = BIRDC,
                 interval: float = 5.0, log: Callable[[str], None] | None = None,
                 bird_output=None, recovery: bool = True) -> None:
        self.datastore = datastore
        self.conf_path = os.path.abspath(conf_path)
        self.ctl_socket = os.path.abspath(ctl_socket)
        self.prefix = list(bird_argv_prefix)
        self.bird, self.birdc_path = bird, birdc_path
        self.interval = interval
        self.recovery = recovery
        self._log = log or _stderr_log
        self.bird_output = bird_output          # file object for BIRD's stderr, None = ours
        self.proc: subprocess.Popen | None = None
        self.adopted = False                    # BIRD found running, not our child
        self.last_error: str | None = None      # last failed check / reload, for tests
        self.applied = 0                        # configs written and loaded
        self._rejected: str | None = None       # last text that failed the check
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- rendering ---------------------------------------------------------------------
    def render(self, snapshot: model.Snapshot) -> str:
        raise NotImplementedError

    def log(self, message: str) -> None:
        self._log(f"confd: {message}")

    # -- one pass ----------------------------------------------------------------------
    def sync(self) -> int:
        """Snapshot, render, apply. Returns the snapshot's etcd index."""
        snapshot = self.datastore.snapshot()
        self.apply(self.render(snapshot))
        return snapshot.etcd_index

    def apply(self, text: str) -> bool:
        """Install `text` if it differs from the file, then make BIRD run it. Returns True
        when a new config was written."""
        changed = self._current() != text and text != self._rejected
        if changed and not self._install(text):
            self._rejected, changed = text, False
        if not os.path.exists(self.conf_path):
            return False
        if not self.bird_running():
            self.start_bird()
        elif changed:
            self.reconfigure()
        if changed:
            self.applied += 1
        return changed

    def _current(self) -> str | None:
        try:
            with open(self.conf_path) as f:
                return f.read()
        except OSError:
            return None

    def _install(self, text: str) -> bool:
        directory = os.path.dirname(self.conf_path)
        os.makedirs(directory, exist_ok=True)
        fd, staged = tempfile.mkstemp(prefix=".bird.cfg.", dir=directory)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            check = subprocess.run([*self.prefix, self.bird, "-p", "-c", staged],
                                   capture_output=True, text=True, timeout=30,
                                   stdin=subprocess.DEVNULL)
            if check.returncode != 0:
                detail = (check.stderr or check.stdout).strip()
                self.last_error = detail
                self.log(f"check of new {os.path.basename(self.conf_path)} failed, keeping the "
                         f"old one: {detail}")
                return False
            os.chmod(staged, 0o644)
            os.replace(staged, self.conf_path)
            staged = None
            self.log(f"target config {self.conf_path} out of sync; updated")
            return True
        finally:
            if staged is not None and os.path.exists(staged):
                os.unlink(staged)

    # -- BIRD --------------------------------------------------------------------------
    @property
    def bird_argv(self) -> list[str]:
        return [*self.prefix, self.bird, *(["-R"] if self.recovery else []),
                "-s", self.ctl_socket, "-d", "-c", self.conf_path]

    @property
    def bird_pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def _ctl_answers(self) -> bool:
        if not os.path.exists(self.ctl_socket):
            return False
        try:
            res = birdc(self.ctl_socket, "show", "status", argv_prefix=self.prefix, timeout=5,
                        birdc_path=self.birdc_path)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return res.returncode == 0 and "BIRD" in res.stdout

    def bird_running(self) -> bool:
        if self.proc is not None:
            if self.proc.poll() is None:
                return True
            self.log(f"bird exited ({self.proc.returncode}); restarting it")
            self.proc = None
        if self.adopted:
            if self._ctl_answers():
                return True
            self.adopted = False
            self.log("adopted bird no longer answers; starting one")
        return False

    def start_bird(self) -> None:
        if self._ctl_answers():      # an earlier confd's BIRD: reuse it
            self.adopted = True
            self.log(f"bird already answers on {self.ctl_socket}; adopting it")
            self.reconfigure()
            return
        os.makedirs(os.path.dirname(self.ctl_socket), exist_ok=True)
        self.log(f"starting bird: {' '.join(self.bird_argv)}")
        self.proc = subprocess.Popen(self.bird_argv, stdin=subprocess.DEVNULL,
                                     stdout=self.bird_output, stderr=self.bird_output)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self._ctl_answers():
                return
            time.sleep(0.05)
        if self.proc.poll() is not None:
            self.log(f"bird exited at once ({self.proc.returncode})")
        else:
            self.log(f"bird started but {self.ctl_socket} does not answer yet")

    def reconfigure(self) -> bool:
        for attempt in range(20):
            try:
                res = birdc(self.ctl_socket, "configure", argv_prefix=self.prefix,
                            birdc_path=self.birdc_path)
            except (OSError, subprocess.TimeoutExpired) as exc:
                res = None
                detail = str(exc)
            else:
                detail = (res.stdout + res.stderr).strip().splitlines()
                detail = detail[-1] if detail else ""
            if res is not None and res.returncode == 0 and "econfigur" in detail:
                self.log(f"bird: {detail}")
                return True
            time.sleep(0.1 * (attempt + 1) if attempt < 5 else 0.5)
        self.last_error = detail
        self.log(f"birdc configure failed: {detail}")
        return False

    def stop_bird(self, timeout: float = 10) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    # -- loop --------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        """Watch until `stop` (default: self.stop()) is set. BIRD keeps running afterwards
        unless stop() is used."""
        stop = stop or self._stop
        index = 0
        while not stop.is_set():
            try:
                index = self.sync()
            except Exception as exc:          # etcd down, BIRD missing: log, retry
                self.log(f"error: {exc}")
                stop.wait(1)
                continue
            started = time.monotonic()
            try:
                self.datastore.wait_for_change(index, self.interval)
            except Exception as exc:
                self.log(f"watch error: {exc}")
                stop.wait(1)
            if time.monotonic() - started < 0.1:   # never spin on a watch that returns at once
                stop.wait(0.1)

    def start(self) -> "_BirdConfd":
        """run() in a daemon thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """End the loop, then stop BIRD if we started it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 15 if timeout is None else timeout)
            self._thread = None
        self.stop_bird()


class Confd(_BirdConfd):
    """calico/node: bird.cfg (with bird_aggr.cfg and bird_ipam.cfg inlined) for `hostname`."""

    def __init__(self, datastore, hostname: str, ip: str, conf_path: str, ctl_socket: str,
                 bird_argv_prefix: Sequence[str] = (), passive: bool | None = None,
                 **kwargs) -> None:
        super().__init__(datastore, conf_path, ctl_socket, bird_argv_prefix, **kwargs)
        self.hostname, self.ip, self.passive = hostname, ip, passive

    def render(self, snapshot: model.Snapshot) -> str:
        return render_node_config(snapshot, self.hostname, self.ip, passive=self.passive)


class RouteReflectorConfd(_BirdConfd):
    """calico/routereflector: bird.cfg for the reflector at `ip`."""

    def __init__(self, datastore, ip: str, conf_path: str, ctl_socket: str,
                 bird_argv_prefix: Sequence[str] = (), **kwargs) -> None:
        super().__init__(datastore, conf_path, ctl_socket, bird_argv_prefix, **kwargs)
        self.ip = ip

    def render(self, snapshot: model.Snapshot) -> str:
        return render_rr_config(snapshot, self.ip)
