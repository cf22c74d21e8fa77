"""Probe engine speed on a running lab: the whole ACL matrix (every probe-workload pair, and
every calico host to and from every probe workload, x every probed port x tcp/udp + icmp echo;
--no-hosts for workloads only) observed by the engine -- method "host" (one prober per node)
and method "exec" (one docker exec per source) -- versus the same matrix probed with one
docker exec per cell on the same lab (workload sources only: a host has no container).

    CALAB_PREFIX=calabp .venv/bin/python -m lab up          # a lab of your own
    sudo CALAB_PREFIX=calabp .venv/bin/python bench/acl_matrix.py [--timeout 1] [--runs 5]
         [--method both|host|exec] [--per-node-cap 8] [--skip-per-cell] [--show-cells]
    CALAB_PREFIX=calabp .venv/bin/python -m lab down

It attaches to the lab that is up (never builds one), creates one probe workload per (calico
host, calico network) under a fresh run prefix, builds the jobs as the acl suite does
(fixtures/acl/jobs.py; ports from fixtures.expect.policy.probe_ports: every port a rule names,
its neighbours, two unnamed ports), starts listeners, probes, compares with the policy engine's
verdicts (mismatches re-probed once: flaky vs wrong), and removes everything again (also on
failure or Ctrl-C).

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
from fixtures.acl.compare import compare, disagreeing  # noqa: E402
from fixtures.acl.expected import expected  # noqa: E402
from fixtures.acl.jobs import HOST, host_peers, peers  # noqa: E402
from fixtures.acl.probes import runner, session as probe_session  # noqa: E402
from fixtures.acl.run import plan  # noqa: E402
from fixtures.acl.probes.model import DEFAULT_PER_NODE_CAP, DEFAULT_TIMEOUT, ProbeError  # noqa: E402
from fixtures.expect.policy import probe_ports  # noqa: E402
from fixtures.facts.datastore import read_datastore  # noqa: E402
from fixtures.facts.session import capture  # noqa: E402
from fixtures.targets import EmbeddedTarget  # noqa: E402


def _load() -> str:
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def _jobs(target, s, hosts: bool):
    """The matrix of the probe workloads (and the hosts), with the engine's verdicts
    (the suite's own path)."""
    facts = read_datastore(target.etcd())      # now with the probe workloads' endpoints
    ours = peers(facts, s.workloads, probe=True)
    if len(ours) != len(s.workloads):
        missing = sorted({w.name for w in s.workloads} - {p.name for p in ours})
        raise LabError(f"no datastore endpoint for {', '.join(missing)}")
    ports = probe_ports(facts)
    jobs = plan(target, ours, [], host_peers(facts, target.calico_hosts) if hosts else [], ports)
    return jobs, expected(facts, jobs), tuple(ports["tcp"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="probe timeout, whole seconds [1]")
    ap.add_argument("--runs", type=int, default=5, help="engine runs (median reported) [5]")
    ap.add_argument("--method", choices=("both", "host", "exec"), default="both",
                    help="engine method(s) to time; the first is compared with the rest [both]")
    ap.add_argument("--per-node-cap", type=int, default=DEFAULT_PER_NODE_CAP)
    ap.add_argument("--skip-per-cell", action="store_true", help="no one-exec-per-cell comparison")
    ap.add_argument("--show-cells", action="store_true", help="print every job's observation")
    ap.add_argument("--no-hosts", action="store_true", help="probe-workload sources only")
    args = ap.parse_args()
    try:
        st = state.require_running()
    except LabError as exc:
        print(f"acl_matrix: {exc}", file=sys.stderr)
        return 1
    target = EmbeddedTarget(st)
    prefix = f"cst-{secrets.token_hex(4)}"
    with netns.inside(st.mgmt_netns_file):
        facts = capture(target)
        nets = sorted(n for _, n in facts.networks)
        print(f"lab {st.topology.name}: nodes {', '.join(target.node_names)}; calico networks "
              f"{', '.join(nets)}; run prefix {prefix}; {os.cpu_count()} CPUs, load {_load()}", flush=True)
        try:
            with probe_session.probe_session(target, prefix, nets, target.calico_hosts,
                                             timeout=args.timeout, per_node_cap=args.per_node_cap,
                                             method="exec" if args.method == "exec" else "host") as s:
                jobs, verdicts, ports = _jobs(target, s, not args.no_hosts)
                print(f"{len(s.workloads)} probe workloads created in {s.timings['create']:.2f} s; "
                      f"ports (fixtures.expect.policy.probe_ports): {', '.join(map(str, ports))}", flush=True)
                lis = s.start_listeners(jobs)
                print(f"listeners for {len(lis.tcp_ports)} tcp + {len(lis.udp_ports)} udp ports in "
                      f"{len(lis.destinations)} workloads: {lis.timings['wall']:.2f} s "
                      f"(start {lis.timings['start']:.2f}, verify {lis.timings['verify']:.2f})", flush=True)
                n = len(jobs.jobs)
                pairs = len({(j.src, j.dst) for j in jobs.jobs})
                from_hosts = sum(j.src.kind == HOST for j in jobs.jobs)
                print(f"matrix: {n} jobs = {pairs} pairs x ({len(ports)} tcp + {len(ports)} udp + icmp), "
                      f"{from_hosts} of them from hosts; timeout {args.timeout} s", flush=True)
                methods = ("host", "exec") if args.method == "both" else (args.method,)
                medians, last = {}, {}
                for method in methods:
                    walls, runs = [], []
                    for i in range(args.runs):
                        res = runner.probe(target, jobs.jobs, args.timeout, args.per_node_cap, method)
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
                    varies = [j for j in jobs.jobs if len({r[j].ok for r in runs}) > 1]
                    print(f"engine ({method}): {n} jobs, median {med:.2f} s wall (min {min(walls):.2f}, "
                          f"max {max(walls):.2f}) = {med / args.timeout:.2f} x the {args.timeout} s timeout; "
                          f"jobs that varied between runs: {len(varies)}"
                          + (": " + "; ".join(str(j) for j in varies[:10]) if varies else ""), flush=True)
                if len(methods) == 2:
                    differ = [j for j in jobs.jobs if last["host"][j].ok != last["exec"][j].ok]
                    print(f"host vs exec observations differ on {len(differ)} jobs"
                          + (": " + "; ".join(str(j) for j in differ[:10]) if differ else ""), flush=True)
                method = methods[0]
                first = last[method]
                again = runner.probe(target, disagreeing(jobs.jobs, verdicts, first), args.timeout,
                                     args.per_node_cap, method)
                cells = compare(jobs, verdicts, first, again)
                count = {st_: sum(c.status == st_ for c in cells) for st_ in ("wrong", "flaky", "correct")}
                allowed = sum(v.allowed for v in verdicts.values())
                print(f"{method} vs the policy engine: {allowed} jobs expected allowed, {n - allowed} "
                      f"dropped; {count['wrong']} wrong, {count['flaky']} flaky, {count['correct']} "
                      f"correct of {n}", flush=True)
                for c in [c for c in cells if c.status != "correct"][:20]:
                    print(f"  {c.status}: {c.src} -> {c.dst_ip} {c.probe}: expected "
                          f"{'allowed' if c.expected else 'dropped'}, saw {c.first}; again {c.second}")
                if args.show_cells:
                    for j, o in first.items():
                        print(f"  {j}: {o}  expected {'allow' if verdicts[j].allowed else 'drop'}")
                if not args.skip_per_cell:
                    execable = [j for j in jobs.jobs if j.src.kind != HOST]
                    each = runner.probe_each(target, execable, args.timeout, args.per_node_cap)
                    agree = sum(each[j].ok == first[j].ok for j in execable)
                    w = each.timings["wall"]
                    print(f"one exec per job ({args.per_node_cap} execs per node at a time): {w:.2f} s wall "
                          f"for the {len(execable)} workload jobs; observations agree with the engine on "
                          f"{agree}/{len(execable)} jobs; load {_load()}", flush=True)
                    for m, md in medians.items():
                        print(f"speed-up of the engine ({m}, median {md:.2f} s) over one exec per job: "
                              f"{w / md:.1f}x", flush=True)
            print(f"probe workloads removed in {s.timings.get('remove', 0):.2f} s", flush=True)
        except (LabError, ProbeError) as exc:
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
