"""Probe engine speed on a running lab: the whole ACL matrix (every probe-workload pair x every
probed port x tcp/udp + icmp echo) observed by the engine -- method "host" (one prober per
node) and method "exec" (one docker exec per source) -- versus the same matrix probed with one
docker exec per cell on the same lab.

    CALAB_PREFIX=calabp .venv/bin/python -m lab up          # a lab of your own
    sudo CALAB_PREFIX=calabp .venv/bin/python bench/acl_matrix.py [--timeout 1] [--runs 5]
         [--method both|host|exec] [--per-node-cap 8] [--skip-per-cell] [--show-cells]
    CALAB_PREFIX=calabp .venv/bin/python -m lab down

It attaches to the lab that is up (never builds one), creates one probe workload per (node,
calico network) under a fresh run prefix, starts listeners, probes, and removes everything
again (also on failure or Ctrl-C). Ports: fixtures.policy.probe_ports (every port a rule names,
its neighbours, two unnamed ports) when that module is there, else 79-81, 442-444, 3305-3307,
8079-8081 and 10000. With fixtures.policy, the engine's verdicts are compared with the
observations (mismatches re-probed once: flaky vs wrong).

Targets (issue #5): the seed matrix probed in <= 1.5 x the probe timeout of wall time; >= 20x
faster than one exec per cell at >= 100 cells.
"""
from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lab import netns, state  # noqa: E402
from lab.errors import LabError  # noqa: E402
from fixtures import probes as P  # noqa: E402
from fixtures.target import LabTarget  # noqa: E402

try:  # another engineer's module; the bench works without it
    from fixtures import policy  # noqa: E402
except ImportError:  # pragma: no cover
    policy = None

FALLBACK_PORTS = (79, 80, 81, 442, 443, 444, 3305, 3306, 3307, 8079, 8080, 8081, 10000)


def _load() -> str:
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def _plan(target: LabTarget, session: P.ProbeSession):
    """(plan, expected or None, ports, source of the ports)."""
    if policy is None:
        return session.matrix(FALLBACK_PORTS, FALLBACK_PORTS), None, FALLBACK_PORTS, "fallback list"
    target.capture()                       # the datastore now holds the probe workloads' endpoints
    eps = {e.endpoint_id: e for e in target.facts.endpoints}
    ours = [w for w in session.workloads if w.endpoint_id in eps]
    if len(ours) != len(session.workloads):
        missing = sorted(w.name for w in session.workloads if w.endpoint_id not in eps)
        raise LabError(f"no datastore endpoint for {', '.join(missing)}")
    ports = policy.probe_ports(target.facts)
    pairs = [(eps[a.endpoint_id], eps[b.endpoint_id]) for a in ours for b in ours if a.name != b.name]
    truth = policy.truth_table(target.facts, pairs, ports=ports)
    plan, expected = P.plan_from_truth(ours, truth)
    return plan, expected, tuple(ports["tcp"]), "fixtures.policy.probe_ports"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=int, default=P.DEFAULT_TIMEOUT, help="probe timeout, whole seconds [1]")
    ap.add_argument("--runs", type=int, default=5, help="engine runs (median reported) [5]")
    ap.add_argument("--method", choices=("both", "host", "exec"), default="both",
                    help="engine method(s) to time; the first is compared with the rest [both]")
    ap.add_argument("--per-node-cap", type=int, default=P.DEFAULT_PER_NODE_CAP)
    ap.add_argument("--skip-per-cell", action="store_true", help="no one-exec-per-cell comparison")
    ap.add_argument("--show-cells", action="store_true", help="print every cell's observation")
    args = ap.parse_args()
    try:
        st = state.require_running()
    except LabError as exc:
        print(f"acl_matrix: {exc}", file=sys.stderr)
        return 1
    target = LabTarget(state=st, run_id=secrets.token_hex(4))
    with netns.inside(st.mgmt_netns_file):
        target.capture()
        print(f"lab {st.topology.name}: nodes {', '.join(target.node_names)}; calico networks "
              f"{', '.join(n for _, n in target.networks)}; run prefix {target.run_prefix}; "
              f"{os.cpu_count()} CPUs, load {_load()}", flush=True)
        try:
            with P.probe_session(target, timeout=args.timeout, per_node_cap=args.per_node_cap,
                                 method="exec" if args.method == "exec" else "host") as s:
                plan, expected, ports, source = _plan(target, s)
                print(f"{len(s.workloads)} probe workloads created in {s.timings['create']:.2f} s; "
                      f"ports ({source}): {', '.join(map(str, ports))}", flush=True)
                lis = s.start_listeners(plan)
                print(f"listeners for {len(lis.tcp_ports)} tcp + {len(lis.udp_ports)} udp ports in "
                      f"{len(lis.workloads)} workloads: {lis.timings['wall']:.2f} s "
                      f"(start {lis.timings['start']:.2f}, verify {lis.timings['verify']:.2f})", flush=True)
                n = len(plan.cells)
                pairs = len({(c.src, c.dst_ip) for c in plan.cells})
                print(f"matrix: {n} cells = {pairs} pairs x ({len(ports)} tcp + {len(ports)} udp + icmp); "
                      f"timeout {args.timeout} s", flush=True)
                methods = ("host", "exec") if args.method == "both" else (args.method,)
                medians, last = {}, {}
                for method in methods:
                    walls, runs = [], []
                    for i in range(args.runs):
                        res = P.probe(target, plan, args.timeout, args.per_node_cap, method)
                        runs.append(res)
                        walls.append(res.timings["wall"])
                        ok = sum(o.ok for o in res.values())
                        states: dict[str, int] = {}
                        for o in res.values():
                            states[o.state] = states.get(o.state, 0) + 1
                        print(f"  {method} run {i + 1}: {res.timings['wall']:.2f} s wall "
                              f"({res.timings['wall'] / args.timeout:.2f} x timeout; slowest exec "
                              f"{res.timings['exec_max']:.2f} s), {ok} answered, {states}, load {_load()}"
                              + (f", problems {res.problems}" if res.problems else ""), flush=True)
                    med = medians[method] = statistics.median(walls)
                    last[method] = runs[-1]
                    varies = [c for c in plan.cells if len({r[c].ok for r in runs}) > 1]
                    print(f"engine ({method}): {n} cells, median {med:.2f} s wall (min {min(walls):.2f}, "
                          f"max {max(walls):.2f}) = {med / args.timeout:.2f} x the {args.timeout} s timeout; "
                          f"cells that varied between runs: {len(varies)}"
                          + (": " + "; ".join(str(c) for c in varies[:10]) if varies else ""), flush=True)
                if len(methods) == 2:
                    differ = [c for c in plan.cells if last["host"][c].ok != last["exec"][c].ok]
                    print(f"host vs exec observations differ on {len(differ)} cells"
                          + (": " + "; ".join(str(c) for c in differ[:10]) if differ else ""), flush=True)
                method = methods[0]
                runs = [last[method]]
                med = medians[method]
                if expected is not None:
                    v = P.verify(target, plan, expected, args.timeout, args.per_node_cap, first=runs[-1],
                                 method=method)
                    allowed = sum(expected.values())
                    print(f"{method} vs fixtures.policy: {allowed} cells expected allowed, {n - allowed} "
                          f"dropped; {v.summary()}", flush=True)
                    for o in (v.wrong + v.flaky)[:20]:
                        print(f"  {o.status}: {o.describe()}")
                if args.show_cells:
                    for c, o in runs[-1].items():
                        exp = "" if expected is None else ("  expected " + ("allow" if expected[c] else "drop"))
                        print(f"  {c}: {o}{exp}")
                if not args.skip_per_cell:
                    each = P.probe_each(target, plan, args.timeout, args.per_node_cap)
                    agree = sum(each[c].ok == runs[-1][c].ok for c in plan.cells)
                    w = each.timings["wall"]
                    print(f"one exec per cell ({args.per_node_cap} execs per node at a time): {w:.2f} s wall "
                          f"for {n} cells; observations agree with the engine on {agree}/{n} cells; "
                          f"load {_load()}", flush=True)
                    for m, md in medians.items():
                        print(f"speed-up of the engine ({m}, median {md:.2f} s) over one exec per cell: "
                              f"{w / md:.1f}x", flush=True)
            print(f"probe workloads removed in {s.timings.get('remove', 0):.2f} s", flush=True)
        except (LabError, P.ProbeError) as exc:
            print(f"acl_matrix: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("acl_matrix: interrupted (probe workloads removed)", file=sys.stderr)
            return 130
        finally:
            target.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
