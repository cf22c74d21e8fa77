"""The suites test a lab: ask the lab plugin for one, and parametrize from it.

Parameters come from the lab itself and are sorted by stable names, so every xdist worker
collects the same tests with the same ids.
"""
from fixtures.pytest_lab import TARGET, require_lab


def pytest_configure(config):
    require_lab(config)


def pytest_generate_tests(metafunc):
    if "node" in metafunc.fixturenames:
        target = metafunc.config.stash.get(TARGET, None)
        nodes = target.node_names if target is not None else []
        metafunc.parametrize("node", nodes, ids=nodes)
