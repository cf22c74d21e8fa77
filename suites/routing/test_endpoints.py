"""Each workload endpoint's plumbing: the host veth and what the container sees (spec §4.3, §5.2)."""
import pytest

from fixtures.expect import expected_interfaces
from fixtures.facts.host_facts import HostFacts


def _interface(lab, ep):
    exp = next((i for i in expected_interfaces(lab.facts, ep.hostname)
                if i.endpoint_id == ep.endpoint_id), None)
    if exp is None:
        pytest.skip(f"endpoint {ep.endpoint_id[:12]} on {ep.hostname} is not programmed by Felix "
                    "(inactive or not a local cali interface)")
    return exp


def test_endpoint_host_side(lab, observe, endpoint):
    """cali<id[:11]> up, proxy_arp=1, rp_filter=1, route `<ip> dev cali… scope link`, static ARP."""
    exp = _interface(lab, endpoint)
    seen: HostFacts = observe(endpoint.hostname)
    where, problems = f"{endpoint.hostname}/{exp.host_iface}", []
    link = seen.link(exp.host_iface)
    if link is None:
        pytest.fail(f"{where}: no such interface on {endpoint.hostname}, though etcd has endpoint "
                    f"{endpoint.endpoint_id[:12]} there (the libnetwork plugin's Join never ran, "
                    "or the veth was deleted)", pytrace=False)
    if not (link.up and link.lower_up):
        problems.append(f"link is {link.operstate} (flags {','.join(link.flags)}), not UP with carrier")
    knobs = seen.sysctls.interfaces.get(exp.host_iface)
    for knob, want in (("proxy_arp", 1), ("rp_filter", 1)):
        value = getattr(knobs, knob, None) if knobs else None
        if value != want:
            problems.append(f"{knob} is {value}, expected {want}")
    for ip in endpoint.ipv4:
        routes = seen.routes_to(f"{ip}/32")
        if not any(r.dev == exp.host_iface and r.scope == "link" for r in routes):
            problems.append(f"no route `{ip} dev {exp.host_iface} scope link` "
                            f"(routes to {ip}: {[r.dev or r.gateway for r in routes] or 'none'})")
        neigh = [n for n in seen.neighbors if n.dst == ip and n.dev == exp.host_iface]
        if not any(n.permanent and (n.lladdr or "").lower() == exp.mac for n in neigh):
            problems.append(f"no permanent ARP entry {ip} lladdr {exp.mac}")
    assert not problems, f"{where} ({exp.reason}): " + "; ".join(problems)


def test_endpoint_workload_side(lab, observe, endpoint):
    """cali0 with the /32, MAC ee:ee:ee:ee:ee:ee, default via 169.254.1.1 inside the container."""
    exp = _interface(lab, endpoint)
    workload = lab.workload_of(endpoint.endpoint_id)
    if workload is None:
        pytest.fail(f"endpoint {endpoint.endpoint_id[:12]} on {endpoint.hostname} has no container "
                    "in Docker: a leftover endpoint key?", pytrace=False)
    net = observe(endpoint.hostname).workloads.get(workload.name)
    if net is None:
        pytest.fail(f"{workload.name} on {endpoint.hostname} is not running", pytrace=False)
    problems = []
    link = net.link(exp.container_iface or "cali0")
    if link is None:
        problems.append(f"no {exp.container_iface} (interfaces: {[x.name for x in net.links]})")
    else:
        if (link.mac or "").lower() != exp.mac:
            problems.append(f"MAC {link.mac}, expected {exp.mac}")
        if set(link.cidrs()) != set(exp.addresses):
            problems.append(f"addresses {list(link.cidrs())}, expected {list(exp.addresses)}")
    default = net.default_route
    if exp.gateway and (default is None or default.gateway != exp.gateway):
        problems.append(f"default route {default and (default.gateway or default.dev)}, "
                        f"expected via {exp.gateway}")
    if exp.gateway and not any(r.dst == f"{exp.gateway}/32" and r.scope == "link" for r in net.routes):
        problems.append(f"no `{exp.gateway} dev {exp.container_iface} scope link` route")
    assert not problems, f"{workload.name} on {endpoint.hostname}: " + "; ".join(problems)


def test_no_stray_cali_interfaces(lab, observe, calico_node):
    """Control plane ↔ data plane: every cali veth belongs to an endpoint in etcd."""
    wanted = {i.host_iface for i in expected_interfaces(lab.facts, calico_node)}
    present = {link.name for link in observe(calico_node).links if link.name.startswith("cali")}
    stray = sorted(present - wanted)
    assert not stray, (f"{calico_node} has cali interfaces with no endpoint in etcd: {stray} "
                       "(a workload deleted behind Calico's back, or an endpoint key removed)")
