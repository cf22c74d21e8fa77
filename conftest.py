"""Root conftest: the plugins every run of the suites uses (lab life cycle, report, snapshots,
host observations, declared intent, agent log errors, tests not applicable to the lab, the
run's record: history and JSON summary). The acl plugin is registered by suites/acl/conftest.py.

Only sessions that ask for a lab get one: suites/conftest.py does; tests/ builds its own.
"""
pytest_plugins = ["fixtures.plugins.lab", "fixtures.plugins.report", "fixtures.plugins.snapshot",
                  "fixtures.plugins.observe", "fixtures.plugins.intent",
                  "fixtures.plugins.agent_logs", "fixtures.plugins.applicable",
                  "fixtures.plugins.run_record"]
