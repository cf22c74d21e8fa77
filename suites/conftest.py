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


def _not_applicable(item) -> bool:
    """pytest's stand-in for a test whose parameters came out empty (no route reflector, no
    Felix reporting its status, …): nothing to test here, so nothing is collected."""
    return any(m.name == "skip" and str(m.kwargs.get("reason", "")).startswith("got empty parameter set")
               for m in item.own_markers)


def pytest_collection_modifyitems(config, items):
    empty = [i for i in items if _not_applicable(i)]
    if empty:
        items[:] = [i for i in items if not _not_applicable(i)]
        config.hook.pytest_deselected(items=empty)


def pytest_terminal_summary(terminalreporter, config):
    """Once, what this lab gave no parameters for (instead of a skipped test each)."""
    lab = lab_session(config)
    if lab is None:
        return
    empty = sorted(name for name, source in params.SOURCES.items() if not source(lab))
    if empty:
        terminalreporter.write_line("not applicable to this lab (no parameters, not collected): "
                                    + ", ".join(empty))
