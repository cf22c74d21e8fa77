"""Docker network name <-> profile ID mapping of calicoctl's NetworkMappedProfile (§3.5).

The libnetwork plugin names a network's profile (and its tag) after the 64-hex network ID;
calicoctl lets users say the network *name* in `profile NAME tag|rule …` and shows names
back. Docker is asked once per command; an unreachable Docker means no mapping.
"""
from __future__ import annotations

import functools

from .common import docker_client

TAG_KEYS = ("src_tag", "dst_tag", "!src_tag", "!dst_tag")


class NetworkMap:
    @functools.cached_property
    def _networks(self) -> dict[str, str]:
        """{network id: name} of the local Docker daemon."""
        try:
            client = docker_client(timeout=10)
            try:
                return {n["Id"]: n["Name"] for n in client.api.networks()}
            finally:
                client.close()
        except Exception:   # no Docker here: calicoctl then works on raw profile names
            return {}

    def id_of(self, name: str) -> str | None:
        return next((i for i, n in self._networks.items() if n == name), None)

    def name_of(self, tag: str) -> str:
        return self._networks.get(tag, tag)

    def to_stored(self, tag: str) -> str:
        return self.id_of(tag) or tag

    def rule_to_stored(self, rule: dict) -> dict:
        return {k: (self.to_stored(v) if k in TAG_KEYS else v) for k, v in rule.items()}

    def rule_to_display(self, rule: dict) -> dict:
        return {k: (self.name_of(v) if k in TAG_KEYS else v) for k, v in rule.items()}
