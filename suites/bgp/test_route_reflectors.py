"""Route reflectors (spec §6.6): once /calico/bgp/v1/rr_v4/<ip> exists and nodes peer with it,
the reflector's BIRD holds one rr-client session per node (and one per other reflector),
reflects routes with its cluster id, and installs none itself."""
import pytest

from fixtures.explain import session_problem, set_difference
from fixtures.expect import expected_sessions
from fixtures.facts.host_facts import parse_bird_config_protocols
from fixtures.facts.host_facts.docker_facts import read_container_file

RR_CONFIG = "/config/bird.cfg"     # where calico/routereflector's confd writes BIRD's config
RR_IMAGE = "calico/routereflector"


def test_rr_session_established(lab, observe, rr_session):
    session, host = rr_session
    if host is None or host not in lab.node_names:
        pytest.fail(f"route reflector {session.local_ip} is not a host of this lab", pytrace=False)
    problem = session_problem(observe(host), session)
    assert problem is None, problem


def _rr_config(lab, observe, host) -> str:
    seen = observe(host)
    if seen.docker_error:
        pytest.fail(f"{host}: dockerd does not answer ({seen.docker_error})", pytrace=False)
    container = next((c for c in seen.docker_containers or () if c.running
                      and (c.image or "").startswith(RR_IMAGE)), None)
    if container is None:
        pytest.fail(f"{host}: no running {RR_IMAGE} container", pytrace=False)
    text = read_container_file(lab.docker(host), container.id, RR_CONFIG)
    assert text.value is not None, f"{host}: cannot read {RR_CONFIG} in {container.name}"
    return text.value


def test_rr_client_configuration(lab, observe, route_reflector):
    """Each node session is an `rr client` with the reflector's cluster id; RR↔RR are not."""
    rr, host = route_reflector
    if host is None:
        pytest.skip(f"route reflector {rr.ip} runs outside this lab")
    blocks = parse_bird_config_protocols(_rr_config(lab, observe, host))
    expected = [s for s in expected_sessions(lab.facts) if s.router == "route-reflector"
                and s.local_ip == rr.ip]
    problem = set_difference((s.protocol for s in expected), blocks, f"{host}: reflector BGP protocols")
    assert problem is None, problem
    wrong = []
    for s in expected:
        body = blocks[s.protocol]
        if s.rr_client != ("rr client;" in body):
            wrong.append(f"{s.protocol} {'lacks' if s.rr_client else 'has'} `rr client`")
        want_id = f"rr cluster id {s.rr_cluster_id};" if s.rr_cluster_id else None
        if s.rr_client and want_id and want_id not in body:
            wrong.append(f"{s.protocol} lacks `{want_id}` (rr_v4 cluster_id)")
    assert not wrong, f"{host}: " + "; ".join(wrong)


def test_rr_installs_no_routes(lab, observe, route_reflector):
    """calico/routereflector runs no kernel protocol: reflected routes stay out of its table."""
    rr, host = route_reflector
    if host is None or host in lab.facts.node_names:
        pytest.skip("the reflector shares its host with calico-node")
    bird_routes = [r.dst for r in observe(host).routes if r.protocol == "bird"]
    assert not bird_routes, f"{host}: the route reflector installed BGP routes {bird_routes}"
