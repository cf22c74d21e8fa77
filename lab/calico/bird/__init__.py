"""BGP for the reference node: confd-style BIRD 1.6 configuration (spec §6), the confd
watchers that keep BIRD running it, and `calicoctl status`'s BGP table (spec §3.3).

* config.py  — pure: render_node_config(snapshot, hostname, ip), render_rr_config(snapshot, rr_ip)
* confd.py   — Confd / RouteReflectorConfd: datastore → bird.cfg → `bird -p` → start / `birdc configure`
* status.py  — pure: parse_protocols(birdc output), bgp_table(), bgp_status_lines()
* __main__   — `python -m lab.calico.bird [node|routereflector]`, the calico/node confd service

Deviations from the 2016 components (all deliberate, all visible in the rendered files):

1. Connection collisions (feasibility G11): of each BGP pair that both ends configure, only
   one side connects: in the node mesh and the RR-to-RR mesh the session toward a lower-IP
   peer gets `passive on`; a route reflector is `passive on` toward its clients. Node
   sessions to global/node-specific peers stay active. Measured here with every BIRD started
   at once: the released template needs 8–19 s for a 3-node mesh (connection collisions,
   sometimes flaps); node↔RR sessions 4–13 s, 2 runs in 6 flapped; with the tweak 3.5–5 s
   and no flap
   (tests/calico/test_bird_integration.py measures it on every run).
   `passive=False` on either render function gives the released templates unchanged.
2. IPIP pools: stock BIRD 1.6 has no `krt_tunnel`; `filter calico_ipip` accepts those routes
   unchanged (with a comment) instead of pointing them at tunl0.
3. bird_aggr.cfg and bird_ipam.cfg are inlined into one bird.cfg (same order as the
   includes), so one file is checked and replaced atomically.
4. Route reflector: a node whose AS differs from the RR's gets no `rr client` session
   (2016 rendered one and BIRD refused the whole file; the 2017 successor skips it).
"""
from .config import render_node_config, render_rr_config  # noqa: F401
from .status import bgp_status_lines, bgp_table, parse_protocols  # noqa: F401
