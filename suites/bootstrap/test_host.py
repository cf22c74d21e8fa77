"""Host kernel settings the tutorial's routing depends on."""


def test_ip_forward(lab, node):
    """Workload traffic is routed by the host: net.ipv4.ip_forward must be 1."""
    value = lab.host(node).read_file("/proc/sys/net/ipv4/ip_forward").decode().strip()
    assert value == "1", (
        f"{node}: net.ipv4.ip_forward is {value}, expected 1: without it the host drops every "
        "packet between workloads on different hosts (sysctl -w net.ipv4.ip_forward=1)")
