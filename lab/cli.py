"""`python -m lab up|down|status|exec|shell`: the embedded lab from a terminal.

Every user error is one line on stderr and a non-zero exit; nothing half-built stays.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

from . import paths, preflight, state, teardown
from .errors import LabError
from .safe_files import write_replacing
from .topology import list_topologies, load_topology
from .transport import lab_hosts, tutorial_env
from .versions import lab_versions


def cmd_up(args) -> int:
    preflight.require_root()
    topo = load_topology(args.topology)
    t0 = time.monotonic()
    st = state_up(topo, calico=not args.bare)
    print(f"lab {st.topology.name} up in {time.monotonic() - t0:.1f}s: "
          f"{', '.join(st.topology.node_names)}; etcd {st.topology.etcd_url}; "
          f"`python -m lab shell {st.topology.node_names[0]}` to get a shell")
    return 0


def state_up(topo, calico: bool):
    from . import builder   # imported late: only `up` needs it
    return builder.up(topo, log=lambda m: print(f"  {m}", flush=True), calico=calico)


def cmd_migrate_rr(args) -> int:
    preflight.require_root()
    st = state.require_running()
    from . import migrate   # imported late: only this command needs it
    took = migrate.migrate(st, log=lambda m: print(f"  {m}", flush=True), reverse=args.reverse)
    print(f"{'back to the node-to-node mesh' if args.reverse else 'migrated to route reflectors'}; "
          f"converged {took:.1f}s after the last step")
    return 0


def cmd_down(args) -> int:
    preflight.require_root()
    try:
        st = state.load()
    except LabError:
        st = None   # unreadable state: the sweep finds everything anyway
    if st is None and not teardown.leftovers():
        print("no lab is up; nothing to do")
        return 0
    t0 = time.monotonic()
    teardown.down(st, log=lambda m: print(f"  {m}", flush=True))
    rest = teardown.leftovers()
    if rest:
        raise LabError("down left things behind: " + "; ".join(rest))
    print(f"lab down in {time.monotonic() - t0:.1f}s; nothing left behind")
    return 0


def cmd_status(args) -> int:
    st = state.load()
    if st is None:
        print("no lab is up" + (" (but leftovers exist: run `python -m lab down`)"
                                if teardown.leftovers() else ""))
        return 3
    topo = st.topology
    age = time.time() - st.created
    print(f"lab {topo.name} (id {st.lab_id}), up {age / 60:.0f} min; etcd {topo.etcd_url} on "
          f"{topo.etcd.node}; management host {topo.management.name} {topo.management.ip}")
    print(f"{'PROCESS':<18} {'PID':>7}  {'STATE':<8} {'RSS':>8}")
    for key, d in sorted(st.daemons.items()):
        rss = d.rss_kib()
        print(f"{key:<18} {d.pid:>7}  {'running' if d.alive() else 'DEAD':<8} "
              f"{f'{rss // 1024} MiB' if rss else '-':>8}")
    for component, version in lab_versions(st).items():
        print(f"{component}: {version}")
    return 0 if all(d.alive() for d in st.daemons.values()) else 1


def cmd_inventory(args) -> int:
    """An inventory of the running lab: its nodes over SSH, as a real lab's would be."""
    import yaml
    from .inventory import load_inventory
    from .sshd import lab_ssh_material
    st = state.require_running()
    topo, material = st.topology, lab_ssh_material(st)
    hosts = {}
    for n in topo.nodes:
        ip, port = material.hosts[n.name]
        hosts[n.name] = {"address": ip, **({"port": port} if port != 22 else {}),
                         "roles": list(n.roles), **({"as_num": n.as_num} if n.as_num else {})}
    data = {"version": 1, "name": topo.name,
            "ssh": {"user": "root", "key_file": material.key_file,
                    "known_hosts": material.known_hosts, "host_key_policy": "verify"},
            "etcd": {"endpoints": [topo.etcd_url], "host": topo.etcd.node}, "hosts": hosts}
    mgmt = st.mgmt_netns_file
    text = (f"# The embedded lab {topo.name} (id {st.lab_id}) as a real lab's inventory, written by\n"
            f"# `python -m lab inventory`. Its addresses are reached from the management namespace:\n"
            f"#   nsenter --net={mgmt} .venv/bin/python -m pytest suites/ --inventory FILE\n"
            + yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return 0
    try:
        # a new file beside the output, renamed over it: never written through a symlink
        write_replacing(args.output, text, check=load_inventory)   # what we write, we accept
    except OSError as err:
        raise LabError(f"-o {args.output}: cannot write it: {err.strerror or err}") from None
    print(f"inventory of {len(hosts)} node(s) written to {args.output}")
    return 0


def cmd_provision(args) -> int:
    from .provision_hosts import main_provision
    return main_provision(args.inventory, args.dry_run, log=lambda m: print(m, flush=True))


def _host(st, name: str):
    hosts = lab_hosts(st.topology)
    if name not in hosts:
        raise LabError(f"unknown node '{name}' (this lab has: {', '.join(hosts)})")
    return hosts[name]


def cmd_exec(args) -> int:
    preflight.require_root()
    st = state.require_running()
    host = _host(st, args.node)
    argv = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not argv:
        raise LabError("nothing to run: `python -m lab exec NODE -- CMD [ARGS…]`")
    full = host.argv(argv)
    os.execvpe(full[0], full, {**os.environ, **host.env})


def cmd_shell(args) -> int:
    preflight.require_root()
    st = state.require_running()
    host = _host(st, args.node)
    env = {**tutorial_env(st.topology), "TERM": os.environ.get("TERM", "xterm")}
    rc = os.path.join(paths.RUN, f"bashrc-{args.node}")
    exports = "".join(f"export {k}={shlex.quote(env[k])}\n"
                      for k in ("ETCD_AUTHORITY", "DOCKER_HOST", "PATH"))
    write_replacing(rc, "# what the tutorial's ~/.bashrc exports on every node\n" + exports
                    + "PS1='[\\u@\\h \\W]\\$ '\n")
    print(f"shell on {args.node} (ETCD_AUTHORITY={env['ETCD_AUTHORITY']}); exit to leave",
          file=sys.stderr)
    full = host.argv(["bash", "--rcfile", rc, "-i"])
    os.execvpe(full[0], full, env)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lab", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build the embedded lab")
    up.add_argument("--topology", default="seed",
                    help=f"a bundled topology ({', '.join(list_topologies())}) or a YAML file")
    up.add_argument("--bare", action="store_true",
                    help="hosts only (etcd, docker, images): type the tutorial's Calico steps yourself")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="remove the lab and everything it left").set_defaults(func=cmd_down)
    mig = sub.add_parser("migrate-rr", help="the tutorial's move from the full mesh to route reflectors")
    mig.add_argument("--reverse", action="store_true", help="back to the node-to-node mesh")
    mig.set_defaults(func=cmd_migrate_rr)
    sub.add_parser("status", help="nodes, processes and versions").set_defaults(func=cmd_status)
    ex = sub.add_parser("exec", help="run a command on a node: exec NODE -- CMD")
    ex.add_argument("node")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    ex.set_defaults(func=cmd_exec)
    inv = sub.add_parser("inventory", help="write an inventory (SSH) of the running lab")
    inv.add_argument("-o", "--output", help="file to write (default: standard output)")
    inv.set_defaults(func=cmd_inventory)
    prov = sub.add_parser("provision", help="the tutorial's setup on a real lab's hosts (SSH)")
    prov.add_argument("--inventory", required=True, metavar="FILE", help="the lab's inventory")
    prov.add_argument("--dry-run", action="store_true", help="only print what would change")
    prov.set_defaults(func=cmd_provision)
    sh = sub.add_parser("shell", help="interactive shell on a node, set up as the tutorial's")
    sh.add_argument("node")
    sh.set_defaults(func=cmd_shell)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        paths.require_prefix()
        return args.func(args)
    except LabError as exc:
        print(f"lab {args.cmd}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lab {args.cmd}: interrupted", file=sys.stderr)
        return 130
