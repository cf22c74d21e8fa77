"""Kernel routes of every node, as the datastore says BIRD and Felix must install them.

Blocks: a blackhole for each block affine to the node, a route via the owner (proto bird)
for every other block. Endpoints: `<ip> dev cali… scope link` on their host; /32s of
workloads sitting in another host's block via that host. Nothing else inside the pools.
"""
import ipaddress

from fixtures.explain import describe_route, explain_route, route_matches
from fixtures.expect import expected_routes
from fixtures.report.html import attach, table_html


def _expected(lab, node):
    return expected_routes(lab.facts, node)


def test_block_route(lab, observe, node_block):
    node, cidr = node_block
    exp = next((r for r in _expected(lab, node) if r.dst == cidr), None)
    assert exp is not None, f"no expectation for block {cidr} on {node}"
    problem = explain_route(lab.facts, observe(node), exp)
    assert problem is None, problem


def test_endpoint_routes(lab, observe, calico_node):
    """Every local endpoint's /32 on its veth, and every foreign-block /32 via its host."""
    seen = observe(calico_node)
    problems = [p for exp in _expected(lab, calico_node)
                if exp.category in ("local-endpoint", "remote-endpoint")
                for p in [explain_route(lab.facts, seen, exp)] if p]
    assert not problems, "\n".join(problems)


def test_no_stray_pool_routes(lab, observe, calico_node, extras):
    """No route inside a Calico pool that the datastore does not account for."""
    pools = [ipaddress.ip_network(p.cidr) for p in lab.facts.pools if p.version == 4]
    expected = [r for r in _expected(lab, calico_node) if r.present]
    rows, bad, stray = [], [], []
    for r in observe(calico_node).routes:
        try:
            net = ipaddress.ip_network(r.dst)
        except ValueError:
            continue
        if not any(net.version == p.version and net.subnet_of(p) for p in pools):
            continue
        match = next((e for e in expected if route_matches(e, r)), None)
        rows.append([describe_route(r), match.reason if match else "NOT EXPECTED"])
        if match is None:
            bad.append(len(rows) - 1)
            stray.append(describe_route(r))
    for e in expected:
        if not any(route_matches(e, r) for r in observe(calico_node).routes):
            rows.append([f"(missing) {e.describe()}", e.reason])
            bad.append(len(rows) - 1)
    attach(extras, table_html(f"{calico_node}: routes inside Calico pools (observed vs expected)",
                              ["route", "why"], rows, bad))
    assert not stray, (f"{calico_node} has routes inside Calico pools that no block, endpoint or "
                       f"BGP advertisement explains: {stray}")
