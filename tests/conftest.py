"""Tests marked `lab` build embedded labs themselves (one at a time: never run them under -n)."""
import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="embedded lab tests need root")
        for item in items:
            if "lab" in item.keywords:
                item.add_marker(skip)
