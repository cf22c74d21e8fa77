"""The acl suite's plugin: the run's ACL matrix, probed once before any test runs."""
from fixtures.plugins import acl


def pytest_configure(config):
    if not config.pluginmanager.is_registered(acl):
        config.pluginmanager.register(acl, "calab-acl")
