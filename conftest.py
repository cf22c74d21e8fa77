"""Root conftest: the lab plugin (options, build/attach, xdist hand-off, `lab` fixture).

Only sessions that ask for a lab get one: suites/conftest.py does; tests/ builds its own.
"""
pytest_plugins = ["fixtures.pytest_lab", "fixtures.observe"]
