"""Files written where another local user could interfere, written so that they cannot.

* Private run state (run locks, a run's own directory) lives in a directory that only the
  user running can write: /run for root, else $XDG_RUNTIME_DIR (systemd's /run/user/UID, mode
  0700). Never under a predictable name in /tmp, where anyone can plant a file or a symlink.
* Files there are opened without following symlinks; a file that must be new is created
  exclusively (O_EXCL).
* A file written to a path the user chose (an inventory, a snapshot, a report) is written to a
  new, randomly named file beside it and renamed over the path: a symlink planted at the path
  is replaced, never written through, and nobody ever sees half a file.
"""
from __future__ import annotations

import os
import stat
import tempfile
from typing import Callable

from .errors import LabError

NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def _why(err: OSError) -> str:
    return err.strerror or str(err)


def check_private_dir(path: str, what: str) -> str:
    """path, if it is a real directory (not a symlink) owned by root or this user and writable
    by nobody else; otherwise one LabError line saying what is wrong."""
    try:
        st = os.lstat(path)
    except OSError as err:
        raise LabError(f"{what} {path}: {_why(err)}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise LabError(f"{what} {path} is not a directory (a symlink?): remove it or pick another")
    if st.st_uid not in (0, os.geteuid()):
        raise LabError(f"{what} {path} belongs to uid {st.st_uid}, not to you: pick a directory "
                       "of your own")
    if st.st_mode & 0o022:
        raise LabError(f"{what} {path} is writable by others (mode {stat.S_IMODE(st.st_mode):o}): "
                       "other users could plant files in it; use a directory only you can write")
    return path


def state_dir() -> str:
    """Where this user's runs keep private state: /run for root, else $XDG_RUNTIME_DIR."""
    if os.geteuid() == 0:
        return check_private_dir("/run", "run state directory")
    given = os.environ.get("XDG_RUNTIME_DIR", "")
    if not given:
        raise LabError("this needs root (run it with sudo), or XDG_RUNTIME_DIR set to a directory "
                       "only you can write (e.g. /run/user/$UID) for the run's lock and state")
    check_private_dir(given, "XDG_RUNTIME_DIR")
    if stat.S_IMODE(os.lstat(given).st_mode) & 0o077:
        raise LabError(f"XDG_RUNTIME_DIR {given} is readable by others: use a directory of mode "
                       "0700 (e.g. /run/user/$UID) for the run's lock and state")
    return given


def make_run_dir(prefix: str = "calab-run-") -> str:
    """A new directory for one run (mode 0700, unpredictable name) in state_dir()."""
    try:
        return tempfile.mkdtemp(prefix=prefix, dir=state_dir())
    except OSError as err:
        raise LabError(f"cannot create the run's directory in {state_dir()}: {_why(err)}") from None


def open_private(path: str, flags: int, mode: int = 0o600) -> int:
    """os.open that never follows a symlink (an existing one fails with ELOOP)."""
    return os.open(path, flags | NOFOLLOW, mode)


def create_new(path: str, text: str, mode: int = 0o600) -> None:
    """Write a file that must not exist yet (O_EXCL: a file or symlink already there fails)."""
    fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def read_private(path: str) -> str:
    fd = open_private(path, os.O_RDONLY)
    with os.fdopen(fd) as f:
        return f.read()


def write_replacing(path: str, text: str, mode: int = 0o644,
                    check: Callable[[str], None] | None = None) -> None:
    """Write text to path in one rename: into a new file (exclusive, random name, never through
    a symlink) in path's folder, then renamed over path. `check(new_file)` may refuse the new
    content first (by raising); the new file is removed whenever path is not replaced."""
    folder, base = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".partial", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            os.fchmod(f.fileno(), mode)
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def writable_target(path: str) -> str | None:
    """Why write_replacing(path) would fail, or None: its folder must exist and be writable,
    and the path must not be a directory. Checked before a run, so that a typo in an output
    path is not found after the work is done."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return "is a directory"
    if not os.path.isdir(folder):
        return f"its folder {folder} does not exist"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"its folder {folder} is not writable"
    return None
