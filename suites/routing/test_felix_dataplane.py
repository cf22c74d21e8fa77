"""Datastore ↔ dataplane: the chains and ipsets Felix must have programmed for what etcd holds
(spec §2.3, §5.3-§5.5), against `iptables-save` and `ipset save` on each Calico node."""
import pytest

from fixtures.expect import felix
from fixtures.params import endpoint_id


def _names(lab):
    return dict(lab.networks)


def _filter(observe, node):
    return observe(node).iptables.get("filter", {})


def _programmed(lab, observe, ep):
    """Felix programs an endpoint whose interface is present and up (spec §5.2); one that is
    not is test_endpoint_host_side's finding, not this module's."""
    link = observe(ep.hostname).link(ep.iface)
    if link is None or not (link.up and link.lower_up):
        state = "does not exist" if link is None else f"is {link.operstate}"
        pytest.skip(f"{ep.iface} {state} on {ep.hostname} (see test_endpoint_host_side)")


def test_endpoint_chains(lab, observe, felix_endpoint):
    """felix-from-<suffix> (MAC check, outbound profiles) and felix-to-<suffix> (inbound)."""
    ep = felix_endpoint
    _programmed(lab, observe, ep)
    chains = _filter(observe, ep.hostname)
    problems = []
    for direction in ("outbound", "inbound"):
        exp = felix.endpoint_chain(lab.facts, ep, direction, _names(lab))
        problems += [f"{exp.name}: {p}" for p in felix.chain_problems(exp, chains.get(exp.name))]
    assert not problems, f"{ep.hostname}, endpoint {ep.short_id}: " + "; ".join(problems)


def test_endpoint_dispatch(lab, observe, felix_endpoint):
    """felix-FROM-ENDPOINT / felix-TO-ENDPOINT send the interface to its chains."""
    ep = felix_endpoint
    _programmed(lab, observe, ep)
    chains = _filter(observe, ep.hostname)
    problems = [p for d in felix.endpoint_dispatch(lab.facts, ep)
                if (p := felix.dispatch_problem(chains, d))]
    assert not problems, f"{ep.hostname}, endpoint {ep.short_id}: " + "; ".join(problems)


def test_profile_chain(lab, observe, felix_profile_chain):
    """felix-p-<id>-i / -o hold one rule group per profile rule, in the profile's order."""
    node, profile, direction = felix_profile_chain
    exp = felix.profile_chain(lab.facts, node, profile, direction, _names(lab))
    if not exp.predictable:
        pytest.skip(f"{exp.name}: a rule uses a selector, which this suite does not predict")
    problems = felix.chain_problems(exp, _filter(observe, node).get(exp.name))
    assert not problems, f"{node}: {exp.name} ({exp.reason}): " + "; ".join(problems)


def _who(lab):
    """An address's endpoint, by its container name where Docker knows it."""
    def who(ip):
        ep = next((e for e in lab.facts.endpoints if ip in e.ipv4), None)
        return f"{endpoint_id(lab, ep)} on {ep.hostname}" if ep else "no endpoint"
    return who


def test_tag_ipset(lab, observe, felix_tag_set):
    """felix-v4-<tag> holds exactly the IPv4 addresses of the endpoints carrying the tag."""
    node, tag = felix_tag_set
    exp = felix.tag_set(lab.facts, tag, _names(lab))
    problem = felix.set_problem(exp, observe(node).ipsets.get(exp.name), _who(lab))
    assert problem is None, f"{node}: {problem}"


def test_pool_ipset(lab, observe, felix_pool_set):
    """felix-all-ipam-pools / felix-masq-ipam-pools hold the pools, while nat-outgoing is on."""
    node, name = felix_pool_set
    exp = next(s for s in felix.pool_sets(lab.facts) if s.name == name)
    problem = felix.set_problem(exp, observe(node).ipsets.get(name))
    assert problem is None, f"{node}: {problem}"


def test_masquerade_rule(lab, observe, felix_masq_node):
    """nat POSTROUTING masquerades traffic from a nat-outgoing pool to outside all pools."""
    masq = [p.cidr for p in lab.facts.pools if p.masquerade and p.version == 4]
    problem = felix.masquerade_problem(observe(felix_masq_node).chain("nat", "POSTROUTING"))
    assert problem is None, f"{felix_masq_node} (nat-outgoing pool(s) {masq}): {problem}"
