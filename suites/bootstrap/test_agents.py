"""The Calico agents alive and doing their work on every calico host — not only their
containers running (spec §0.2, §1.9, §6.1): Felix, confd and BIRD in calico-node, the
plugin in calico-libnetwork. A stopped Felix leaves every container "Up" and every check of
today's dataplane green, while nothing follows the next datastore change."""
import pytest

from fixtures.expect import expected_bird_debug, expected_sessions
from fixtures.explain import confd_render_problem
from fixtures.facts.felix_status import read_status, reporting, status_problem
from fixtures.facts.host_facts import BirdUnreachable
from fixtures.facts.host_facts.agents import agent_problem
from fixtures.facts.host_facts.docker_facts import read_container_file

BIRD_CONFIG = "/etc/calico/confd/config/bird.cfg"     # confd's output in calico-node (§6.1)


def _seen(observe, node):
    seen = observe(node)
    if seen.docker_error:
        pytest.fail(f"{node}: dockerd does not answer ({seen.docker_error})", pytrace=False)
    return seen


def test_agent_running(observe, calico_agent):
    """The agent's process is in its container and runnable (not stopped, not a zombie);
    BIRD also answers on its control socket."""
    node, name = calico_agent
    seen = _seen(observe, node)
    problem = agent_problem(seen.processes or {}, name)
    if problem is None and name == "bird" and isinstance(seen.bird, BirdUnreachable):
        problem = f"BIRD runs but does not answer on its control socket ({seen.bird.reason})"
    assert problem is None, f"{node}: {problem}"


def test_confd_rendered_the_bgp_keys(lab, observe, calico_node):
    """confd's last render of bird.cfg came after the last BGP key change: it holds the
    peers (neighbor, AS) and the loglevel the datastore gives this node now."""
    node = calico_node
    _seen(observe, node)
    text = read_container_file(lab.docker(node), "calico-node", BIRD_CONFIG)
    assert text.value is not None, f"{node}: {'; '.join(text.problems)}"
    sessions = [s for s in expected_sessions(lab.facts, node=node) if s.router == "calico-node"]
    problem = confd_render_problem(text.value, sessions, expected_bird_debug(lab.facts, node))
    assert problem is None, (f"{node}: confd's {BIRD_CONFIG} is older than the BGP keys (confd "
                             f"stopped or failing?): {problem}")


def test_felix_reports_status(lab, felix_reporter):
    """With ReportingIntervalSecs > 0, Felix's status key in etcd is fresh."""
    node = felix_reporter
    interval, ttl = reporting(lab.facts, node)
    problem = status_problem(read_status(lab.target.etcd(), node), interval, ttl)
    assert problem is None, problem


def test_agent_log_clean(request, agent_log_errors, agent_container):
    """No error or traceback in the container's log since --agent-log-window s before the run."""
    node, container = agent_container
    errors, problems = agent_log_errors(node, container)
    assert not problems, f"{node}: {'; '.join(problems)}"
    window = request.config.getoption("agent_log_window")
    assert not errors, (f"{node}: {container} logged {len(errors)} error(s) since {window:.0f} s before this run: "
                        + " | ".join(str(e) for e in errors[:8]))
