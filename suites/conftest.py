"""The suites test a lab: ask the lab plugin for one, and parametrize from it.

Parameters come from the lab's own data — its hosts, and the Calico datastore as the
controller read it when the session started — sorted by stable names, so every xdist worker
collects the same tests with the same ids (node1, node1/192.168.22.0-26, web_container_1).
"""
from __future__ import annotations

from fixtures import params
from fixtures.plugins.lab import lab_session, require_lab


def pytest_configure(config):
    require_lab(config)


def pytest_generate_tests(metafunc):
    lab = lab_session(metafunc.config)
    for name in metafunc.fixturenames:
        source = params.SOURCES.get(name)
        if source is not None:
            values = source(lab) if lab is not None else []
            metafunc.parametrize(name, [v for v, _ in values], ids=[i for _, i in values])

