"""
Usage:
  calicoctl profile show [--detailed]
  calicoctl profile (add|remove) <PROFILE> [--no-check]
  calicoctl profile <PROFILE> tag show
  calicoctl profile <PROFILE> tag (add|remove) <TAG>
  calicoctl profile <PROFILE> rule add (inbound|outbound) [--at=<POSITION>]
    (allow|deny) [(
      (tcp|udp) [(from [(ports <SRCPORTS>)] [(tag <SRCTAG>)] [(cidr <SRCCIDR>)])]
                [(to   [(ports <DSTPORTS>)] [(tag <DSTTAG>)] [(cidr <DSTCIDR>)])] |
      icmp [(type <ICMPTYPE> [(code <ICMPCODE>)])]
           [(from [(tag <SRCTAG>)] [(cidr <SRCCIDR>)])]
           [(to   [(tag <DSTTAG>)] [(cidr <DSTCIDR>)])] |
      icmpv6 [(type <ICMPTYPE> [(code <ICMPCODE>)])]
             [(from [(tag <SRCTAG>)] [(cidr <SRCCIDR>)])]
             [(to   [(tag <DSTTAG>)] [(cidr <DSTCIDR>)])] |
      [(from [(tag <SRCTAG>)] [(cidr <SRCCIDR>)])]
      [(to   [(tag <DSTTAG>)] [(cidr <DSTCIDR>)])]
    )]
  calicoctl profile <PROFILE> rule remove (inbound|outbound) (--at=<POSITION>|
    (allow|deny) [(
      (tcp|udp) [(from [(ports <SRCPORTS>)] [(tag <SRCTAG>)] [(cidr <SRCCIDR>)])]
                [(to   [(ports <DSTPORTS>)] [(tag <DSTTAG>)] [(cidr <DSTCIDR>)])] |
      icmp [(type <ICMPTYPE> [(code <ICMPCODE>)])]
           [(from [(tag <SRCTAG>)] [(cidr <SRCCIDR>)])]
           [(to   [(tag <DSTTAG>)] [(cidr <DSTCIDR>)])] |
      icmpv6 [(type <ICMPTYPE> [(code <ICMPCODE>)])]
             [(from [(tag <SRCTAG>)] [(cidr <SRCCIDR>)])]
             [(to   [(tag <DSTTAG>)] [(cidr <DSTCIDR>)])] |
      [(from [(tag <SRCTAG>)] [(cidr <SRCCIDR>)])]
      [(to   [(tag <DSTTAG>)] [(cidr <DSTCIDR>)])]
    )])
  calicoctl profile <PROFILE> rule show
  calicoctl profile <PROFILE> rule json
  calicoctl profile <PROFILE> rule update

Description:
  Modify available profiles and configure rules or tags.

Options:
  --detailed        Show additional information.
  --no-check        Remove a profile without checking if there are endpoints
                    associated with the profile.
  --at=<POSITION>   Specify the position in the chain where the rule should
                    be placed. Default: append at end.

Examples:
  Add and set up a rule to prevent all inbound traffic except pings from the 192.168/16 subnet
  $ calicoctl profile add only-local-pings
  $ calicoctl profile only-local-pings rule remove inbound --at=1
  $ calicoctl profile only-local-pings rule add inbound allow icmp type 0 from cidr 192.168.0.0/16
"""
from __future__ import annotations

import sys

from .. import rules
from ..table import table
from .common import datastore, fail, validate_name
from .netmap import NetworkMap

DIRECTIONS = {"inbound": "inbound_rules", "outbound": "outbound_rules"}


def run(args) -> int:
    if args["show"] and not args["tag"] and not args["rule"]:
        return show(args["--detailed"])
    if args["add"] and not args["tag"] and not args["rule"]:
        return add(args["<PROFILE>"])
    if args["remove"] and not args["tag"] and not args["rule"]:
        return remove(args["<PROFILE>"], args["--no-check"])
    profile = _Target(args["<PROFILE>"])
    # `rule` first: a rule's own words ("from tag web") also set docopt's `tag` key
    if not args["rule"]:
        if args["show"]:
            return profile.tag_show()
        return profile.tag_add(args["<TAG>"]) if args["add"] else profile.tag_remove(args["<TAG>"])
    if args["show"]:
        return profile.rule_show()
    if args["json"]:
        return profile.rule_json()
    if args["update"]:
        return profile.rule_update(sys.stdin.read())
    direction = "inbound" if args["inbound"] else "outbound"
    position = args["--at"]
    tokens = _rule_tokens(args["_argv"], direction)
    if args["add"]:
        return profile.rule_add(direction, position, tokens)
    return profile.rule_remove(direction, position, tokens)


def _rule_tokens(argv: list[str], direction: str) -> list[str]:
    """The words after `rule add|remove inbound|outbound`, without --at (docopt checked them)."""
    rest = argv[argv.index(direction) + 1:]
    out, skip = [], False
    for i, tok in enumerate(rest):
        if skip:
            skip = False
            continue
        if tok == "--at":
            skip = True
            continue
        if tok.startswith("--at="):
            continue
        out.append(tok)
    return out


def show(detailed: bool) -> int:
    ds = datastore()
    names = sorted(ds.profile_names())
    if not detailed:
        print(table(["Name"], [[n] for n in names]))
        return 0
    rows = []
    for name in names:
        members = ds.profile_members(name)
        if not members:
            rows.append([name, "None", "None", "None", "None", "None"])
        for ep in members:
            rows.append([name, ep.hostname, ep.orchestrator_id, ep.workload_id, ep.endpoint_id, ep.state])
    print(table(["Name", "Host", "Orchestrator ID", "Workload ID", "Endpoint ID", "State"], rows))
    return 0


def add(name: str) -> int:
    validate_name(name)
    ds = datastore()
    if ds.profile_exists(name):
        print(f"Profile {name} already exists.")
    else:
        ds.create_profile(name)
        print(f"Created profile {name}")
    return 0


def remove(name: str, no_check: bool) -> int:
    ds = datastore()
    if not ds.profile_exists(name):
        print(f"Profile {name} not found.")
        return 0
    if not no_check and ds.profile_members(name):
        print("Cannot remove profile - profile in use by endpoint(s).\n"
              "Use the '--no-check' flag to remove the profile anyway.")
        return 0
    ds.remove_profile(name)
    print(f"Deleted profile {name}")
    return 0


class _Target:
    """A profile named directly, or through a Docker network name (NetworkMappedProfile)."""

    def __init__(self, name: str) -> None:
        self.ds = datastore()
        self.netmap = NetworkMap()
        self.name = name
        if self.ds.profile_exists(name):
            self.profile_id = name
        else:
            network_id = self.netmap.id_of(name)
            if network_id is None or not self.ds.profile_exists(network_id):
                fail(f"Profile {name} not found.")
            self.profile_id = network_id

    # -- tags --------------------------------------------------------------------------------
    def tag_show(self) -> int:
        for tag in self.ds.get_profile(self.profile_id).tags:
            print(self.netmap.name_of(tag))
        return 0

    def tag_add(self, tag: str) -> int:
        stored = self.netmap.to_stored(tag)
        tags = list(self.ds.get_profile(self.profile_id).tags)
        if stored not in tags:
            tags.append(stored)
            self.ds.set_profile_tags(self.profile_id, tags)
        print(f"Tag {tag} added to profile {self.name}")
        return 0

    def tag_remove(self, tag: str) -> int:
        stored = self.netmap.to_stored(tag)
        tags = list(self.ds.get_profile(self.profile_id).tags)
        if stored not in tags:
            fail(f"Tag {tag} is not on profile {self.name}")
        tags.remove(stored)
        self.ds.set_profile_tags(self.profile_id, tags)
        print(f"Tag {tag} removed from profile {self.name}")
        return 0

    # -- rules -------------------------------------------------------------------------------
    def _doc(self) -> dict:
        p = self.ds.get_profile(self.profile_id)
        return {"inbound_rules": list(p.inbound), "outbound_rules": list(p.outbound)}

    def _write(self, doc: dict) -> None:
        stored = {k: [self.netmap.rule_to_stored(r) for r in doc[k]] for k in DIRECTIONS.values()}
        try:   # libcalico's to_json casts ports with int(): a range crashes it (libcalico#158)
            stored = {k: [rules.to_stored_json_dict(r) for r in v] for k, v in stored.items()}
        except rules.PortRangeCrash as exc:
            print(f"ValueError: {exc}")
            sys.exit(1)
        self.ds.set_profile_rules(self.profile_id, stored)

    def _display_doc(self) -> dict:
        return {k: [self.netmap.rule_to_display(r) for r in v] for k, v in self._doc().items()}

    def rule_show(self) -> int:
        print(rules.rule_show(self._display_doc()), end="")
        return 0

    def rule_json(self) -> int:
        print(rules.rules_json(self._display_doc()), end="")
        return 0

    def rule_update(self, text: str) -> int:
        try:
            doc = rules.parse_rules_update(text)
        except rules.RuleError as exc:
            fail(str(exc))
        self._write(doc)
        print(f"Successfully updated rules on profile {self.name}")
        return 0

    def rule_add(self, direction: str, position: str | None, tokens: list[str]) -> int:
        try:
            rule = rules.parse_rule(tokens)
        except rules.RuleError as exc:
            fail(str(exc))
        doc = self._display_doc()
        chain = doc[DIRECTIONS[direction]]
        if any(rules.rules_equal(rule, r) for r in chain):
            print("Rule already present, skipping.")
            return 0
        if position is None:
            chain.append(rule)
        else:
            index = _position(position)
            if not 1 <= index <= len(chain) + 1:
                print(f"Position {position} is out-of-range.")
            chain.insert(max(index - 1, 0), rule)   # calicoctl inserts anyway
        self._write(doc)
        return 0

    def rule_remove(self, direction: str, position: str | None, tokens: list[str]) -> int:
        doc = self._display_doc()
        chain = doc[DIRECTIONS[direction]]
        if position is not None:
            index = _position(position)
            if not 1 <= index <= len(chain):
                fail("Rule position out-of-range.")
            del chain[index - 1]
        else:
            try:
                rule = rules.parse_rule(tokens)
            except rules.RuleError as exc:
                fail(str(exc))
            match = next((i for i, r in enumerate(chain) if rules.rules_equal(rule, r)), None)
            if match is None:
                fail("Rule not found.")
            del chain[match]
        self._write(doc)
        return 0


def _position(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        fail(f"Position {text} is out-of-range.")
