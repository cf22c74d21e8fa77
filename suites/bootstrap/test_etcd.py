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
        client.delete(key)
    except etcd.EtcdException as exc:
        pytest.fail(f"etcd at {lab.topology.etcd_url} does not serve the v2 keys API: "
                    f"{type(exc).__name__}: {exc} (is etcd running on {lab.topology.etcd.node} "
                    "with --enable-v2=true?)", pytrace=False)
    assert seen == value, f"etcd returned {seen!r} for {key}, expected {value!r}"


def test_etcd_reachable_from_node(lab, node):
    """Each node's dockerd and Calico reach etcd at ETCD_AUTHORITY, as the tutorial sets it."""
    url = f"{lab.topology.etcd_url}/health"
    res = lab.host(node).run(["curl", "-sS", "--max-time", "3", url], timeout=10)
    assert res.ok and '"health":"true"' in res.stdout, (
        f"{node} cannot get a healthy answer from etcd at {url}: "
        f"{(res.stderr or res.stdout).strip() or f'exit {res.rc}'}")
