"""The running lab's description, saved as JSON so another process can attach to it.

It is written by `up`, read by `status`/`exec`/`down`, by the pytest controller and by
xdist workers (which get the same dict through workerinput instead of the file).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Mapping

from . import paths
from .errors import LabError
from .proc import Daemon
from .topology import Topology


@dataclass
class LabState:
    topology: Topology
    lab_id: str
    created: float = field(default_factory=time.time)
    # "etcd", "dockerd@node1", "sshd@node1", …
    daemons: dict[str, Daemon] = field(default_factory=dict)

    # -- derived views --------------------------------------------------------------------
    @property
    def mgmt_netns_file(self) -> str:
        return paths.netns_path(f"{paths.PREFIX}-{self.topology.management.name}")

    def alive_daemons(self) -> list[Daemon]:
        return [d for d in self.daemons.values() if d.alive()]

    # -- (de)serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "lab_id": self.lab_id,
            "created": self.created,
            "topology": self.topology.to_dict(),
            "daemons": {k: d.to_dict() for k, d in sorted(self.daemons.items())},
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "LabState":
        return cls(topology=Topology.from_dict(d["topology"]), lab_id=d["lab_id"],
                   created=float(d["created"]),
                   daemons={k: Daemon.from_dict(v) for k, v in d["daemons"].items()})

    def save(self, path: str = paths.STATE_FILE) -> None:
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.to_dict(), f, indent=1, sort_keys=True)
        os.replace(tmp, path)


def load(path: str = paths.STATE_FILE) -> LabState | None:
    """The saved state, or None when no lab was brought up."""
    paths.require_prefix()
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LabError(f"{path} is unreadable ({exc}); run `python -m lab down` to clean up") from exc
    try:
        return LabState.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise LabError(f"{path} is not a lab state file ({exc!r}); "
                       "run `python -m lab down` to clean up") from exc


def require_running(path: str = paths.STATE_FILE) -> LabState:
    """The running lab, or one clear error saying how to get one."""
    st = load(path)
    if st is None:
        raise LabError("no lab is up: start one with `python -m lab up` (or run `pytest suites/`, "
                       "which builds its own)")
    if not st.alive_daemons():
        raise LabError("the lab's processes are gone (a crash?): run `python -m lab down`, then "
                       "`python -m lab up`")
    return st
