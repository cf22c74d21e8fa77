"""
Usage:
  calicoctl config felix <NAME> [<VALUE>|--remove] [--force]
  calicoctl config bgp <NAME> [<VALUE>|--remove] [--force]
  calicoctl config node bgp <NAME> [<VALUE>|--remove] [--force]

Description:
  Configure or show low-level component configuration for Felix and BGP.

Options:
 --remove  Remove the configuration entry.
 --force   Force update of configuration entry even if key value is unknown,
           or the value is not recognized as valid.

Valid configuration:
  Command         | <NAME>   | <VALUE>s
------------------+----------+-----------------------------------------
  config felix    | loglevel | none debug info warning error critical
  config bgp      | loglevel | none debug info
  config node bgp | loglevel | none debug info

Warnings:
  -  Changing the global BGP logging levels using the `calicoctl config bgp`
     command may cause all BGP sessions to bounce potentially resulting in a
     transient loss of service.  If you need to change the logging level for
     BGP, it is recommended to change the levels on a per-node basis using
     the `calicoctl config node bgp` command.
"""
from __future__ import annotations

import re
import sys

from .. import keys
from ..datastore import etcd_errors
from .common import datastore, hostname, paragraph

# name -> (the stored key name, the values accepted: matched at the start, as 0.22's re.match)
FELIX_CONFIG = {"loglevel": ("LogSeverityScreen", "none|debug|info|warning|error|critical")}
BGP_CONFIG = {"loglevel": ("loglevel", "none|debug|info")}
# a forced unknown name becomes a key segment: one segment, nothing that walks the tree
FORCED_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def run(args) -> int:
    known = FELIX_CONFIG if args["felix"] else BGP_CONFIG
    validate(known, args["<NAME>"], args["<VALUE>"], args["--force"])
    key = config_key(args)
    if args["--remove"]:
        return remove_config(key)
    if args["<VALUE>"]:
        return set_config(key, args["<VALUE>"])
    return show_config(key)


def validate(known: dict, name: str, value: str | None, force: bool) -> None:
    if name not in known:
        paragraph(f"The configuration '{name}' is not recognized as a valid option.")
        if not FORCED_NAME_RE.match(name):        # not in 0.22: the name is a key segment
            paragraph("Configuration names may only contain letters, numbers, dots, dashes "
                      "and underscores.")
            sys.exit(1)
        _forced_or_exit(force)
        return                                    # 0.22 checked no value once forced
    if value and not re.match(known[name][1], value):
        paragraph(f"The configuration value '{value}' is not recognized as a valid value.")
        _forced_or_exit(force)


def _forced_or_exit(force: bool) -> None:
    if force:
        paragraph("The --force option is set.")
    else:
        paragraph("Use the --force option to override.")
        sys.exit(1)


def config_key(args) -> str:
    """/calico/v1/config/<Name>, /calico/bgp/v1/host/<this host>/<name> or
    /calico/bgp/v1/global/<name>; a known name is stored under its internal name."""
    known = FELIX_CONFIG if args["felix"] else BGP_CONFIG
    name = args["<NAME>"]
    stored = known[name][0] if name in known else name
    if args["felix"]:
        return keys.config(stored)
    if args["node"]:
        return keys.bgp_host(hostname(), stored)
    return f"{keys.BGP_GLOBAL}/{stored}"


@etcd_errors
def set_config(key: str, value: str) -> int:
    datastore().client.write(key, value)     # silent, as in 0.22
    return 0


@etcd_errors
def remove_config(key: str) -> int:
    import etcd
    try:
        datastore().client.delete(key)
        print("Value removed")
    except etcd.EtcdKeyNotFound:
        print("No value configured")
    return 0


@etcd_errors
def show_config(key: str) -> int:
    import etcd
    try:
        print(datastore().client.read(key).value)
    except etcd.EtcdKeyNotFound:
        print("No value configured")
    return 0
