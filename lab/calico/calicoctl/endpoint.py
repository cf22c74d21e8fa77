"""
Usage:
  calicoctl endpoint show [--host=<HOSTNAME>] [--orchestrator=<ORCHESTRATOR_ID>]
    [--workload=<WORKLOAD_ID>] [--endpoint=<ENDPOINT_ID>] [--detailed]
  calicoctl endpoint <ENDPOINT_ID> profile (append|remove|set) [--host=<HOSTNAME>]
    [--orchestrator=<ORCHESTRATOR_ID>] [--workload=<WORKLOAD_ID>]  [<PROFILES>...]
  calicoctl endpoint <ENDPOINT_ID> profile show [--host=<HOSTNAME>]
    [--orchestrator=<ORCHESTRATOR_ID>] [--workload=<WORKLOAD_ID>]

Description:
  Configure or show endpoints assigned to existing containers

Options:
 --detailed                         Show additional information
 --host=<HOSTNAME>                  Filters endpoints on a specific host
 --orchestrator=<ORCHESTRATOR_ID>   Filters endpoints created on a specific orchestrator
 --workload=<WORKLOAD_ID>           Filters endpoints on a specific workload
 --endpoint=<ENDPOINT_ID>           Filters endpoints with a specific endpoint ID

Examples:
    Show all endpoints belonging to 'host1':
        $ calicoctl endpoint show --host=host1

    Add a profile called 'profile-A' to the endpoint a1b2c3d4:
        $ calicoctl endpoint a1b2c3d4 profile append profile-A

    Add a profile called 'profile-A' to the endpoint a1b2c3d4, but faster,
    by providing more specific filters:
        $ calicoctl endpoint a1b2c3d4 profile append profile-A --host=host1 --orchestrator=docker --workload=f9e8d7e6
"""
from __future__ import annotations

import dataclasses
import ipaddress
import sys
from typing import NoReturn, Sequence

from ..datastore import Datastore
from ..model import Endpoint
from ..table import table
from .common import NAME_MESSAGE, NAME_RE, datastore, paragraph

MULTIPLE = ("More than 1 endpoint matches the provided criteria.  Please provide additional "
            "parameters to refine the search.")
SUMMARY_HEADINGS = ["Hostname", "Orchestrator ID", "Number of Workloads", "Number of Endpoints"]
DETAILED_HEADINGS = ["Hostname", "Orchestrator ID", "Workload ID", "Endpoint ID", "Addresses",
                     "MAC", "Profiles", "State"]


class NoMatch(Exception):
    """No endpoint matches the filters (libcalico's KeyError)."""


class MultipleMatch(Exception):
    """More than one endpoint matches where one was wanted (libcalico MultipleEndpointsMatch)."""


@dataclasses.dataclass(frozen=True)
class Filters:
    """The optional criteria of every endpoint command; empty ones match anything."""
    host: str | None = None
    orchestrator: str | None = None
    workload: str | None = None
    endpoint: str | None = None

    def matches(self, ep: Endpoint) -> bool:
        return all(not want or want == got for want, got in (
            (self.host, ep.hostname), (self.orchestrator, ep.orchestrator_id),
            (self.workload, ep.workload_id), (self.endpoint, ep.endpoint_id)))


def select(ds: Datastore, f: Filters) -> list[Endpoint]:
    """libcalico get_endpoints: read under the host when one is named, then filter."""
    return [ep for ep in ds.endpoints(f.host or None) if f.matches(ep)]


def select_one(ds: Datastore, f: Filters) -> Endpoint:
    found = select(ds, f)
    if not found:
        raise NoMatch()
    if len(found) > 1:
        raise MultipleMatch()
    return found[0]


# -- dispatch -----------------------------------------------------------------------------------

def run(args) -> int:
    validate_profile_names(args.get("<PROFILES>") or [])
    if not args["profile"]:
        f = Filters(args["--host"], args["--orchestrator"], args["--workload"], args["--endpoint"])
        return show(f, args["--detailed"])
    f = Filters(args["--host"], args["--orchestrator"], args["--workload"], args["<ENDPOINT_ID>"])
    profiles = args["<PROFILES>"]
    if args["append"]:
        return profile_append(f, profiles)
    if args["remove"]:
        return profile_remove(f, profiles)
    if args["set"]:
        return profile_set(f, profiles)
    return profile_show(f)


def validate_profile_names(names: Sequence[str]) -> None:
    # 0.22 only kept the verdict of the last name (a loop overwrote it); every name counts here
    if not all(NAME_RE.match(n) for n in names):
        paragraph(NAME_MESSAGE)
        sys.exit(1)


# -- endpoint show ------------------------------------------------------------------------------

def show(f: Filters, detailed: bool) -> int:
    print(render(select(datastore(), f), detailed) + "\n")
    return 0


def render(endpoints: Sequence[Endpoint], detailed: bool) -> str:
    """The summary (one row per host and orchestrator) or the detailed table, sorted as
    PrettyTable's sortby="Hostname" did: by the whole row, hostname first."""
    if detailed:
        rows = [[ep.hostname, ep.orchestrator_id, ep.workload_id, ep.endpoint_id,
                 "\n".join(_by_address(ep.ipv4_nets) + _by_address(ep.ipv6_nets)), ep.mac,
                 ",".join(ep.profile_ids), ep.state] for ep in endpoints]
        return table(DETAILED_HEADINGS, sorted(rows))
    return table(SUMMARY_HEADINGS, summary_rows(endpoints))


def _by_address(nets: Sequence[str]) -> list[str]:
    # 0.22 printed a set (any order); address order reads best
    return sorted(nets, key=lambda n: ipaddress.ip_network(n, strict=False))


def summary_rows(endpoints: Sequence[Endpoint]) -> list[list]:
    """[host, orchestrator, distinct workloads, endpoints] per (host, orchestrator)."""
    groups: dict[tuple[str, str], list[Endpoint]] = {}
    for ep in endpoints:
        groups.setdefault((ep.hostname, ep.orchestrator_id), []).append(ep)
    return sorted([host, orch, len({e.workload_id for e in eps}), len(eps)]
                  for (host, orch), eps in groups.items())


# -- endpoint <ID> profile … --------------------------------------------------------------------

def check_profile_list(ds: Datastore, names: Sequence[str]) -> None:
    """Every profile must exist (by its stored name: no Docker network mapping here) and be
    named once."""
    seen: set[str] = set()
    for name in names:
        if not ds.profile_exists(name):
            print(f"Profile with name {name} was not found.")
            sys.exit(1)
        if name in seen:
            print(f"Profile with name {name} was specified more than once.")
            sys.exit(1)
        seen.add(name)


def _unknown(first_line: str, f: Filters, named: bool = True) -> NoReturn:
    print(first_line + "\n")
    paragraph(f"Endpoint {f.endpoint} is unknown to Calico." if named
              else "Endpoint could not be found.")
    sys.exit(1)


def _multiple() -> NoReturn:
    paragraph(MULTIPLE)
    sys.exit(1)


def _write_profiles(ds: Datastore, ep: Endpoint, profile_ids: Sequence[str]) -> None:
    ds.set_endpoint(dataclasses.replace(ep, profile_ids=tuple(profile_ids)))


def profile_append(f: Filters, names: Sequence[str]) -> int:
    ds = datastore()
    check_profile_list(ds, names)
    if not names:
        paragraph("No profile specified.")
        return 0
    try:
        ep = select_one(ds, f)
    except NoMatch:
        _unknown("Failed to append profiles to endpoint.", f)
    except MultipleMatch:
        _multiple()
    # libcalico names the first of the endpoint's own profiles that is asked for again
    present = next((p for p in ep.profile_ids if p in names), None)
    if present is not None:
        paragraph(f"Profile {present} is already in endpoint profile list")
        return 0
    _write_profiles(ds, ep, list(ep.profile_ids) + list(names))
    paragraph(f"Profile(s) {', '.join(names)} appended.")
    return 0


def profile_set(f: Filters, names: Sequence[str]) -> int:
    ds = datastore()
    check_profile_list(ds, names)
    try:
        ep = select_one(ds, f)
    except NoMatch:
        _unknown("Failed to set profiles for endpoint.", f, named=False)
    except MultipleMatch:   # 0.22 let this one through as an empty DataStoreError line
        _multiple()
    _write_profiles(ds, ep, names)
    paragraph(f"Profile(s) set to {', '.join(names)}." if names
              else "Removed all profiles from endpoint.")
    return 0


def profile_remove(f: Filters, names: Sequence[str]) -> int:
    ds = datastore()
    check_profile_list(ds, names)
    if not names:
        paragraph("No profile specified.")
        return 0
    try:
        ep = select_one(ds, f)
    except NoMatch:
        _unknown("Failed to remove profiles from endpoint.", f, named=False)
    except MultipleMatch:
        print(MULTIPLE.replace("  ", " "))   # 0.22 printed this one plainly, unwrapped
        sys.exit(1)
    remaining = list(ep.profile_ids)
    for name in names:
        if name not in remaining:
            paragraph(f"Profile {name} is not in endpoint profile list.")
            return 0
        remaining.remove(name)
    _write_profiles(ds, ep, remaining)
    paragraph(f"Profile(s) {','.join(names)} removed.")
    return 0


def profile_show(f: Filters) -> int:
    try:
        ep = select_one(datastore(), f)
    except MultipleMatch:
        print("Failed to list profiles in endpoint.\n")
        paragraph(MULTIPLE)
        sys.exit(1)
    except NoMatch:
        _unknown("Failed to list profiles in endpoint.", f)
    if ep.profile_ids:
        print(table(["Name"], [[p] for p in sorted(ep.profile_ids)]) + "\n")
    else:
        print("Endpoint has no profiles associated with it.")
    return 0
