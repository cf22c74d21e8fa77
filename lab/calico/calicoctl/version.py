"""
Usage:
  calicoctl version

Description:
  Display the version of calicoctl
"""
from __future__ import annotations

VERSION = "0.22.0"


def run(args) -> int:
    print(VERSION)
    return 0
