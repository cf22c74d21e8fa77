"""etcd: the datastore Docker's cluster store and Calico both live in (v2 API)."""
import etcd
import pytest


def test_etcd_serves_v2_api(lab):
    """Write, read back and delete a run-prefixed key through the v2 keys API."""
    key, value = f"/{lab.run_prefix}/bootstrap/probe", f"written-by-{lab.run_prefix}"
    client = lab.etcd()
    try:
        client.write(key, value, ttl=60)
        seen = client.read(key).value
        client.delete(f"/{lab.run_prefix}", recursive=True)   # the key and the directories
    except etcd.EtcdException as exc:
        pytest.fail(f"etcd at {lab.etcd_url} does not serve the v2 keys API: "
                    f"{type(exc).__name__}: {exc} (is etcd running on {lab.topology.etcd.node} "
                    "with --enable-v2=true?)", pytrace=False)
    assert seen == value, f"etcd returned {seen!r} for {key}, expected {value!r}"


def test_etcd_reachable_from_node(lab, node):
    """Each node's dockerd and Calico reach etcd at ETCD_AUTHORITY, as the tutorial sets it."""
    url = f"{lab.etcd_url}/health"
    # over https the node's own CA and client files are unknown here: reaching etcd's TLS
    # listener (an answer, or a refusal for want of a client certificate) is what is checked
    tls = lab.etcd_url.startswith("https:")
    res = lab.host(node).run(["curl", "-sS", "--max-time", "3", *(["-k"] if tls else []), url],
                             timeout=10)
    said = (res.stderr or res.stdout).strip()
    reached = res.ok and '"health":"true"' in res.stdout
    if tls and not reached:
        reached = any(w in said.lower() for w in ("certificate", "alert", "handshake failure"))
    assert reached, (f"{node} cannot get a healthy answer from etcd at {url}: "
                     f"{said or f'exit {res.rc}'}")
