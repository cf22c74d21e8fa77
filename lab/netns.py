"""Network, mount and UTS namespaces: enter them from Python, run commands inside them.

The suite's own process joins the lab's management namespace with setns(2) so that every
socket it opens lands in the lab. setns(CLONE_NEWNET) applies to the calling thread only;
threads started afterwards inherit it, which is why callers enter before starting threads.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
from typing import Iterator, Sequence

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def setns(path: str, nstype: int = CLONE_NEWNET) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns_fd(fd, nstype)
    finally:
        os.close(fd)


def _setns_fd(fd: int, nstype: int) -> None:
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


class NetnsSwitch:
    """Moves the calling thread into a network namespace and back."""

    def __init__(self) -> None:
        self._home: int | None = None

    def enter(self, path: str) -> None:
        if self._home is None:
            self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        setns(path)

    def leave(self) -> None:
        if self._home is not None:
            _setns_fd(self._home, CLONE_NEWNET)
            os.close(self._home)
            self._home = None


@contextlib.contextmanager
def inside(path: str) -> Iterator[None]:
    switch = NetnsSwitch()
    switch.enter(path)
    try:
        yield
    finally:
        switch.leave()


def nsenter(argv: Sequence[str], net: str, mnt: str | None = None, uts: str | None = None) -> list[str]:
    """argv run inside the given namespace files. nsenter execs, so the PID is argv's.

    Never `ip netns exec` for node commands: it builds a fresh mount namespace with the
    host's /run, where `docker` would reach the wrong daemon."""
    cmd = ["nsenter", f"--net={net}"]
    if mnt:
        cmd.append(f"--mount={mnt}")
    if uts:
        cmd.append(f"--uts={uts}")
    return cmd + ["--", *argv]
