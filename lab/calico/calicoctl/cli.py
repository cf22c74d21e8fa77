"""Override the host:port of the ETCD server by setting the environment variable:
ETCD_ENDPOINTS [example: http://1.2.3.4:2379,http://1.2.3.5:2379]
or, if ETCD_ENDPOINTS is left unset:
ETCD_AUTHORITY [default: 127.0.0.1:2379]

Usage: calicoctl <command> [<args>...]

    status            Print current status information
    node              Configure the main calico/node container and establish Calico networking
    container         Configure containers and their addresses
    profile           Configure endpoint profiles
    endpoint          Configure the endpoints assigned to existing containers
    pool              Configure ip-pools
    bgp               Configure global bgp
    ipam              Configure IP address management
    checksystem       Check for incompatibilities on the host system
    diags             Save diagnostic information
    version           Display the version of calicoctl
    config            Configure low-level component configuration

See 'calicoctl <command> --help' to read about a specific subcommand.
"""
from __future__ import annotations

import sys

from docopt import docopt

from ..datastore import DatastoreError
from . import (bgp, checksystem, config, container, diags, endpoint, ipam, node, pool, profile,
               status, version)

COMMANDS = {"status": status, "node": node, "container": container, "profile": profile,
            "endpoint": endpoint, "pool": pool, "bgp": bgp, "ipam": ipam,
            "checksystem": checksystem, "diags": diags, "version": version, "config": config}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    top = docopt(__doc__, argv=argv, options_first=True)
    command = top["<command>"]
    module = COMMANDS.get(command)
    if module is None:
        # 0.22 printed this help and exited 0 (docopt's --help exit); non-zero says it failed
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
