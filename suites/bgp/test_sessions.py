"""BGP between the hosts, as the datastore configures it: the mesh, global and node peers,
route reflectors (spec §6.2, §6.6, §8.19–22). Observed through BIRD (`birdc show protocols
all`), the kernel's TCP sockets on port 179 (`ss`) and `calicoctl status`."""
import pytest

from fixtures.explain import session_health_problem, session_problem, set_difference
from fixtures.expect import expected_sessions
from fixtures.facts.host_facts import BirdUnreachable
from fixtures.facts.host_facts.calicoctl import parse_calicoctl_status
from fixtures.report.html import attach, table_html


def _node_sessions(lab, node):
    return [s for s in expected_sessions(lab.facts, node=node) if s.router == "calico-node"]


def _bird(observed, node):
    if isinstance(observed.bird, BirdUnreachable):
        pytest.fail(f"{node}: {observed.bird}", pytrace=False)
    return [p for p in observed.bird if p.row.proto == "BGP"]


def test_session_established(lab, observe, session):
    """Each expected peering is Established in BIRD and a TCP session on port 179."""
    problem = session_problem(observe(session.node), session)
    assert problem is None, problem


def test_session_reaches_its_peer(observe, reach, session):
    """Established is not enough (BIRD and the socket linger for the hold time): the node's
    route to the peer is a usable fabric route, the peer answers a TCP SYN on port 179, and
    BIRD's hold timer shows the peer's messages still arriving."""
    problem = session_health_problem(observe(session.node), reach(session.node).get(session.peer_ip),
                                     session)
    assert problem is None, problem


def test_peer_set(lab, observe, calico_node, extras):
    """BIRD has exactly the BGP protocols the datastore asks for: nothing missing or extra."""
    expected = _node_sessions(lab, calico_node)
    observed = _bird(observe(calico_node), calico_node)
    rows = [[s.protocol, s.peer_ip, s.kind, "expected", next(
        (f"{p.state}/{p.row.info}" for p in observed if p.name == s.protocol), "MISSING")]
        for s in expected]
    rows += [[p.name, p.neighbor_address, "?", "NOT EXPECTED", f"{p.state}/{p.row.info}"]
             for p in observed if p.name not in {s.protocol for s in expected}]
    bad = [i for i, r in enumerate(rows) if "MISSING" in r[4] or r[3] == "NOT EXPECTED"]
    attach(extras, table_html(f"{calico_node}: BGP sessions (expected vs BIRD)",
                              ["protocol", "peer", "kind", "datastore", "BIRD state"], rows, bad))
    problem = set_difference((s.protocol for s in expected), (p.name for p in observed),
                             f"{calico_node}: BIRD BGP protocols vs the datastore "
                             f"(node_mesh={'on' if lab.facts.bgp.node_mesh else 'off'})")
    assert problem is None, problem


def test_as_numbers(lab, observe, calico_node):
    """Local AS from the host key else the global one; peer AS as configured."""
    observed = {p.name: p for p in _bird(observe(calico_node), calico_node)}
    problems = []
    for s in _node_sessions(lab, calico_node):
        p = observed.get(s.protocol)
        if p is None:
            continue   # test_peer_set reports it
        seen = (p.local_as, p.neighbor_as)
        if seen != (s.local_as, s.peer_as):
            problems.append(f"{s.protocol}: local AS {seen[0]}, neighbor AS {seen[1]}; expected "
                            f"{s.local_as} / {s.peer_as} ({s.reason})")
    assert not problems, f"{calico_node}: " + "; ".join(problems)


KIND_NAMES = {"mesh": "node-to-node mesh", "global": "global", "node": "node specific"}


def test_calicoctl_status_lists_the_peers(lab, calico_node):
    """`calicoctl status` shows the same peers, each Established (parsed by `|` as Calico's ST did)."""
    res = lab.host(calico_node).run(["calicoctl", "status"], timeout=30)
    assert res.ok, f"{calico_node}: `calicoctl status` exited {res.rc}: {res.stdout + res.stderr}"
    status = parse_calicoctl_status(res.stdout)
    rows = {(r.peer, r.kind): r.info for r in status.peers}
    expected = {(s.peer_ip, KIND_NAMES[s.kind]) for s in _node_sessions(lab, calico_node)
                if s.kind in KIND_NAMES}
    problem = set_difference(expected, rows, f"{calico_node}: `calicoctl status` peers")
    assert problem is None, problem + (f" (it says: {status.bird_line})" if status.bird_line else "")
    down = {k: v for k, v in rows.items() if not v.startswith("Established")
            and any(s.peer_ip == k[0] and s.established for s in _node_sessions(lab, calico_node))}
    assert not down, f"{calico_node}: `calicoctl status` shows peers not Established: {down}"


def test_routes_learned(lab, observe, calico_node):
    """The routes BIRD installed (proto bird, not blackholes) are exactly the remote ones the
    datastore predicts: each remote block, each /32 outside its host's blocks."""
    from fixtures.explain import describe_route, route_matches
    from fixtures.expect import expected_routes
    expected = [e for e in expected_routes(lab.facts, calico_node)
                if e.present and e.proto == "bird" and e.kind != "blackhole"]
    learned = [r for r in observe(calico_node).routes if r.protocol == "bird" and r.type == "unicast"]
    missing = [e.describe() for e in expected if not any(route_matches(e, r) for r in learned)]
    extra = [describe_route(r) for r in learned if not any(route_matches(e, r) for e in expected)]
    assert not (missing or extra), (f"{calico_node}: BGP-learned routes differ from the datastore: "
                                    f"missing {missing}, unexpected {extra}")
