"""Convergence of the tutorial's route-reflector migration on the embedded `rr` lab.

    sudo .venv/bin/python bench/rr_migration.py [--cycles 3]

Per cycle: bring the lab to the full mesh, record what matters (fixtures.snapshot), run
`migrate-rr`, then measure from its last command until (a) every BGP session is Established
and (b) every node reaches every workload exactly as before; then the same for `--reverse`.
Prints the figures; asserts nothing (speed is measured here, not in tests).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fixtures import snapshot  # noqa: E402
from fixtures.facts.host_facts import collect_all  # noqa: E402
from fixtures.facts.session import capture  # noqa: E402
from fixtures.targets import EmbeddedTarget  # noqa: E402
from fixtures.targets.session import LabSession  # noqa: E402
from lab import builder, migrate, netns, preflight, teardown  # noqa: E402
from lab.errors import LabError  # noqa: E402
from lab.topology import load_topology  # noqa: E402


def current(target: LabSession) -> dict:
    facts = collect_all({n: target.host(n) for n in target.node_names},
                        {n: target.docker(n) for n in target.node_names})
    return snapshot.take(target, facts)


def same_paths(before: dict, target: LabSession) -> bool:
    now = current(target)
    return all(not snapshot.lost_paths(before, now, n) for n in before["paths"])


def converge(target: LabSession, before: dict, reverse: bool) -> tuple[float, float]:
    sessions = migrate.migrate(target.target.state, log=lambda m: None, reverse=reverse)
    t0 = time.monotonic()
    while not same_paths(before, target):
        if time.monotonic() - t0 > 120:
            now = current(target)
            lost = {n: snapshot.lost_paths(before, now, n) for n in before["paths"]}
            raise LabError(f"paths did not come back within 120 s: {lost}")
        time.sleep(0.1)
    return sessions, sessions + (time.monotonic() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=3)
    args = ap.parse_args()
    try:
        preflight.check_all()
        if teardown.leftovers():
            raise LabError("a lab is up or left over: `python -m lab down` first")
        st = builder.up(load_topology("rr"), log=lambda m: None)
        try:
            with netns.inside(st.mgmt_netns_file):
                embedded = EmbeddedTarget(st)
                target = LabSession(embedded, "bench", capture(embedded), "")
                before = current(target)
                results = {"forward": [], "reverse": []}
                for i in range(args.cycles):
                    for direction in ("forward", "reverse"):
                        s, p = converge(target, before, reverse=direction == "reverse")
                        results[direction].append((s, p))
                        print(f"cycle {i + 1} {direction}: sessions Established {s:.2f} s, "
                              f"paths as before {p:.2f} s after the last step", flush=True)
            for direction, runs in results.items():
                print(f"rr lab, {direction}, {args.cycles} cycles: median sessions "
                      f"{statistics.median(r[0] for r in runs):.2f} s, median paths "
                      f"{statistics.median(r[1] for r in runs):.2f} s")
        finally:
            teardown.down(st, log=lambda m: None)
    except LabError as exc:
        print(f"rr_migration: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
