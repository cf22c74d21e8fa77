"""Tests marked `lab` build embedded labs themselves (one at a time: never run them under -n)."""
import os

import pytest

from tests.etcd_server import etcd_client, etcd_server  # noqa: F401  (fixtures for every test dir)


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="embedded lab tests need root")
        for item in items:
            if "lab" in item.keywords:
                item.add_marker(skip)
