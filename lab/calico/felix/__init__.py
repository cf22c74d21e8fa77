"""Felix 1.4.1b2-equivalent agent of the reference node (spec §5).

render(snapshot, hostname) -> Desired is pure; Dataplane(run=...).apply(desired) makes the
kernel of the current network namespace match it; Agent ties both to the datastore.
"""
from .render import Desired, FelixConfig, IpsetSpec, LocalEndpoint, Tunnel, render

__all__ = ["Desired", "FelixConfig", "IpsetSpec", "LocalEndpoint", "Tunnel", "render"]
