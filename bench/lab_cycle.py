"""Median bring-up and teardown seconds of the embedded lab over N cycles, for the hosts alone
(`up --bare`: etcd, one dockerd per node, images) and for the full lab (plus the tutorial's
Calico: nodes, pools, networks, ACLs, workloads, BGP Established).

    sudo .venv/bin/python bench/lab_cycle.py [--topology seed] [--cycles 3] [--mode bare|full|both]

Targets for the seed topology: hosts up <= 10 s (issue #2), full lab up <= 15 s (issue #3),
down <= 5 s.
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
    ap.add_argument("--mode", choices=("bare", "full", "both"), default="both")
    args = ap.parse_args()
    modes = ("bare", "full") if args.mode == "both" else (args.mode,)
    try:
        preflight.check_all()
        topo = load_topology(args.topology)
        if teardown.leftovers():
            raise LabError("a lab is up or left over: `python -m lab down` first")
        for mode in modes:
            ups, downs = [], []
            for i in range(args.cycles):
                t0 = time.monotonic()
                st = builder.up(topo, log=lambda m: None, calico=mode == "full")
                t1 = time.monotonic()
                teardown.down(st, log=lambda m: None)
                t2 = time.monotonic()
                ups.append(t1 - t0)
                downs.append(t2 - t1)
                print(f"{mode} cycle {i + 1}: up {t1 - t0:.2f} s, down {t2 - t1:.2f} s", flush=True)
            print(f"{args.topology} ({len(topo.nodes)} nodes), {mode}, {args.cycles} cycles: "
                  f"median up {statistics.median(ups):.2f} s, median down {statistics.median(downs):.2f} s",
                  flush=True)
    except LabError as exc:
        print(f"lab_cycle: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
