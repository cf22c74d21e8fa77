"""Tests marked `lab` build embedded labs themselves. Under xdist (`./run tests`) every worker
needs a CALAB_PREFIX of its own, so that its labs never meet another worker's; modules go to
workers whole (`--dist loadfile`), the longest first."""
import os

import pytest

from tests.etcd_server import etcd_client, etcd_server  # noqa: F401  (fixtures for every test dir)

# Seconds each module took in CI (four workers on two cores, `--durations` summed per module):
# the long ones start first, so that no worker is left with one of them at the end. Unlisted
# modules keep pytest's order.
LONGEST_FIRST = [
    "tests/lab/test_suite_faults.py",         # ~330 s
    "tests/lab/test_rr_migration.py",         # ~300 s
    "tests/lab/test_bootstrap_faults.py",     # ~240 s
    "tests/lab/test_acl_mutations.py",        # ~205 s
    "tests/lab/test_diagnostics.py",          # ~150 s
    "tests/lab/test_inventory_run.py",        # ~135 s
    "tests/lab/test_dataplane_faults.py",     # ~85 s
    "tests/lab/test_tutorial.py",             # ~80 s
    "tests/lab/test_main_job.py",             # ~75 s
    "tests/lab/test_calicoctl_lab.py",        # ~70 s
    "tests/lab/test_acl_traces.py",           # ~65 s
    "tests/lab/test_calico_invariants.py",    # ~60 s
    "tests/unit/test_bad_input.py",           # ~55 s
    "tests/lab/test_lifecycle.py",            # ~45 s
    "tests/lab/test_history.py",              # ~30-45 s
    "tests/lab/test_rr_two_reflectors.py",    # ~45 s
    "tests/calico/test_bird_integration.py",  # ~40 s
    "tests/lab/test_provision_hosts.py",      # ~30 s
]


def pytest_configure(config):
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker and os.environ.get("CALAB_PREFIX", "calab") == "calab":
        raise pytest.UsageError(
            f"xdist worker {worker} has no CALAB_PREFIX of its own, so its labs would collide "
            "with the other workers': run `./run tests` (one --tx popen//env:CALAB_PREFIX=... "
            "per worker), or run without -n")


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="embedded lab tests need root")
        for item in items:
            if "lab" in item.keywords:
                item.add_marker(skip)
