"""Override the host:port of the ETCD server by setting the environment variable
ETCD_AUTHORITY [default: 127.0.0.1:2379]

Usage: calicoctl <command> [<args>...]

    status            Print current status information
    node              Configure the main calico/node container and establish Calico networking
    profile           Configure endpoint profiles
    pool              Configure ip-pools
    bgp               Configure global bgp
    ipam              Configure IP address management
    version           Display the version of calicoctl

See 'calicoctl <command> --help' to read about a specific subcommand.
"""
from __future__ import annotations

import sys

from docopt import docopt

from ..datastore import DatastoreError
from . import bgp, ipam, node, pool, profile, status

VERSION = "0.22.0"
COMMANDS = {"status": status, "node": node, "profile": profile, "pool": pool, "bgp": bgp,
            "ipam": ipam}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    top = docopt(__doc__, argv=argv, options_first=True)
    command = top["<command>"]
    if command == "version":
        print(VERSION)
        return 0
    module = COMMANDS.get(command)
    if module is None:
        print(__doc__.strip())
        return 1
    args = docopt(module.__doc__, argv=argv)
    args["_argv"] = argv     # profile rule add|remove re-reads its words from here
    try:
        return module.run(args) or 0
    except DatastoreError as exc:
        print(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
