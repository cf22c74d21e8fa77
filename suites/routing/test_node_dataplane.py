"""Per-node dataplane pieces that pools ask for, and traffic between nodes (spec §5.5, §8.14).
(ip_forward is checked by suites/bootstrap/test_host.py, nat-outgoing by test_felix_dataplane.py.)"""
import shlex

import pytest

from fixtures.expect import bgp_path
from fixtures.facts.host_facts import HostFacts
from lab import docker_api


@pytest.mark.applies("ipip")
def test_tunl0_for_ipip_pools(lab, observe, calico_node):
    """An IPIP pool makes Felix bring tunl0 up with the host's tunnel address."""
    ipip = [p.cidr for p in lab.facts.pools if p.ipip and not p.disabled]
    seen: HostFacts = observe(calico_node)
    tunnel = lab.facts.config_value("IpInIpTunnelAddr", calico_node)
    link = seen.link("tunl0")
    if link is None:
        support = lab.host(calico_node).run(["test", "-d", "/sys/module/ipip"], timeout=10)
        if not support.ok:
            pytest.skip(f"{calico_node}'s kernel has no IPIP support (no /sys/module/ipip): the IPIP "
                        f"pool(s) {ipip} cannot carry traffic on this host")
        pytest.fail(f"{calico_node}: no tunl0 although IPIP pool(s) {ipip} exist", pytrace=False)
    problems = [] if link.up else [f"tunl0 is {link.operstate}"]
    if tunnel and not any(c.split("/")[0] == tunnel for c in link.cidrs()):
        problems.append(f"tunl0 has {list(link.cidrs())}, expected tunnel address {tunnel}")
    assert not problems, f"{calico_node}: " + "; ".join(problems)


def _endpoint_pair(lab, a, b):
    """A source endpoint on a and a destination on b that share a profile (network)."""
    for src in sorted(lab.facts.endpoints_on(a), key=lambda e: e.endpoint_id):
        for dst in sorted(lab.facts.endpoints_on(b), key=lambda e: e.endpoint_id):
            if set(src.profile_ids) & set(dst.profile_ids) and src.ipv4 and dst.ipv4:
                return src, dst
    return None


def test_icmp_between_nodes(lab, node_pair):
    """A workload on one node pings a workload of the same network on the other (Calico's
    default profile lets members of a network reach each other on every protocol)."""
    a, b = node_pair
    choice = _endpoint_pair(lab, a, b)
    if choice is None:
        pytest.skip(f"no network has workloads on both {a} and {b}")
    src, dst = choice
    w, target = lab.workload_of(src.endpoint_id), lab.workload_of(dst.endpoint_id)
    assert w is not None, f"{a}: endpoint {src.endpoint_id[:12]} has no container to ping from"
    ip = dst.ipv4[0]
    try:
        res = lab.docker(a).containers.get(w.container_id).exec_run(
            ["sh", "-c", f"ping -c 2 -W 1 {shlex.quote(ip)}"])
    except docker_api.ERRORS as exc:
        pytest.fail(f"{a}: cannot exec in {w.name}: {type(exc).__name__}", pytrace=False)
    last = res.output.decode(errors="replace").strip().splitlines()[-1:]
    to = target.name if target else f"endpoint {dst.endpoint_id[:12]}"
    path_ok, path = bgp_path(lab.facts, a, b)
    cause = "" if path_ok else f"; the datastore gives no BGP path: {path}"
    assert res.exit_code == 0, (f"{w.name} on {a} cannot ping {ip} ({to} on {b}, same network): "
                                f"{last}{cause}")
