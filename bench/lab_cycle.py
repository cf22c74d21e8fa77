"""Median bring-up and teardown seconds of the embedded lab over N cycles.

    sudo .venv/bin/python bench/lab_cycle.py [--topology seed] [--cycles 3]

Targets for the seed topology (issue #2): up <= 10 s, down <= 5 s.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lab import builder, preflight, teardown  # noqa: E402
from lab.errors import LabError  # noqa: E402
from lab.topology import load_topology  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topology", default="seed")
    ap.add_argument("--cycles", type=int, default=3)
    args = ap.parse_args()
    try:
        preflight.check_all()
        topo = load_topology(args.topology)
        if teardown.leftovers():
            raise LabError("a lab is up or left over: `python -m lab down` first")
        ups, downs = [], []
        for i in range(args.cycles):
            t0 = time.monotonic()
            st = builder.up(topo, log=lambda m: None)
            t1 = time.monotonic()
            teardown.down(st, log=lambda m: None)
            t2 = time.monotonic()
            ups.append(t1 - t0)
            downs.append(t2 - t1)
            print(f"cycle {i + 1}: up {t1 - t0:.2f} s, down {t2 - t1:.2f} s", flush=True)
    except LabError as exc:
        print(f"lab_cycle: error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.topology} ({len(topo.nodes)} nodes), {args.cycles} cycles: "
          f"median up {statistics.median(ups):.2f} s, median down {statistics.median(downs):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
