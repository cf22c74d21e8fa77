"""Processes: run commands, start daemons, and stop exactly the process we started.

PIDs get reused, so a daemon is remembered as (pid, start time in clock ticks) and only
signalled while /proc still shows that same start time.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from .errors import LabError


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


def run(argv: Sequence[str], timeout: float = 30, check: bool = True, input: str | None = None,
        env: Mapping[str, str] | None = None) -> Result:
    """Run argv (never through a shell) and capture its output."""
    try:
        cp = subprocess.run(list(argv), input=input, capture_output=True, text=True,
                            timeout=timeout, env=dict(env) if env is not None else None)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"command timed out after {timeout:g}s: {' '.join(argv)}") from exc
    except FileNotFoundError as exc:
        raise LabError(f"command not found: {argv[0]}") from exc
    res = Result(cp.returncode, cp.stdout, cp.stderr)
    if check and not res.ok:
        detail = (res.stderr or res.stdout).strip().splitlines()
        raise LabError(f"{' '.join(argv)} failed (exit {res.rc}): {detail[-1] if detail else 'no output'}")
    return res


@dataclass(frozen=True)
class Daemon:
    name: str
    pid: int
    start_ticks: int

    def to_dict(self) -> dict:
        return {"name": self.name, "pid": self.pid, "start_ticks": self.start_ticks}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Daemon":
        return cls(d["name"], int(d["pid"]), int(d["start_ticks"]))

    def alive(self) -> bool:
        return process_start_ticks(self.pid) == self.start_ticks

    def rss_kib(self) -> int | None:
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None


def process_start_ticks(pid: int) -> int | None:
    """Start time of a live (non-zombie) process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # comm may contain spaces and parentheses: fields resume after the last ')'
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def spawn(name: str, argv: Sequence[str], log_path: str) -> Daemon:
    """Start a long-lived daemon detached from our session, logging to log_path.

    argv[0] must exec the daemon itself (nsenter does), so the PID we get is the daemon's."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    ticks = None
    for _ in range(50):  # /proc/<pid>/stat appears at once; the loop only covers a fast crash
        ticks = process_start_ticks(proc.pid)
        if ticks is not None:
            break
        time.sleep(0.01)
    if ticks is None:
        raise LabError(f"{name} exited at once; see {log_path}")
    return Daemon(name, proc.pid, ticks)


def stop(daemons: Sequence[Daemon], timeout: float = 20) -> list[str]:
    """SIGTERM every daemon, wait for all, SIGKILL the stragglers. Returns names killed hard."""
    for d in daemons:
        if d.alive():
            _signal(d.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(d.alive() for d in daemons):
        time.sleep(0.05)
    killed = []
    for d in daemons:
        if d.alive():
            _signal(d.pid, signal.SIGKILL)
            killed.append(d.name)
    wait_until(lambda: not any(d.alive() for d in daemons), 5, "daemons to die after SIGKILL")
    return killed


def kill_pids(pids: Sequence[int]) -> None:
    """SIGKILL leftovers of a crashed lab and wait until they are gone."""
    for pid in pids:
        _signal(pid, signal.SIGKILL)
    wait_until(lambda: all(process_start_ticks(p) is None for p in pids), 10,
               f"leftover processes {sorted(pids)} to die")


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    """Poll predicate until truthy; LabError naming `what` on timeout. Returns the value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise LabError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
