"""`python -m lab.calico.bird [node|routereflector]`: the confd service of calico/node
(default) or of calico/routereflector, configured from the environment like the 2016 images:
HOSTNAME, IP, ETCD_AUTHORITY/ETCD_ENDPOINTS/… (read by Datastore.from_env), plus optional
BIRD_CONF and BIRD_CTL paths. Runs until SIGTERM/SIGINT, then stops its BIRD."""
from __future__ import annotations

import os
import signal
import socket
import sys
import threading

from .confd import Confd, RouteReflectorConfd

NODE_CONF = "/etc/calico/confd/config/bird.cfg"
RR_CONF = "/config/bird.cfg"
CTL = "/var/run/calico/bird.ctl"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    mode = argv[0] if argv else "node"
    if mode not in ("node", "routereflector", "rr"):
        print(f"usage: python -m lab.calico.bird [node|routereflector] (got {mode!r})",
              file=sys.stderr)
        return 2
    from ..datastore import Datastore       # only here: the rest of the package is pure
    env = os.environ
    ip = env.get("IP", "")
    if not ip:
        print("confd: the IP environment variable is required", file=sys.stderr, flush=True)
        return 1
    ds = Datastore.from_env(env)
    ctl = env.get("BIRD_CTL", CTL)
    if mode == "node":
        hostname = env.get("HOSTNAME") or socket.gethostname()
        confd = Confd(ds, hostname, ip, env.get("BIRD_CONF", NODE_CONF), ctl)
    else:
        confd = RouteReflectorConfd(ds, ip, env.get("BIRD_CONF", RR_CONF), ctl)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    worker = threading.Thread(target=confd.run, args=(stop,), daemon=True)
    worker.start()
    stop.wait()
    worker.join(confd.interval + 15)
    confd.stop_bird()
    return 0


if __name__ == "__main__":
    sys.exit(main())
