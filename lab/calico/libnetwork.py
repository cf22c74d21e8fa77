"""The calico libnetwork plugin (calico/node-libnetwork v0.9.0): network + IPAM driver.

Docker finds it at /run/docker/plugins/calico.sock and uses it both as `--driver calico`
and `--ipam-driver calico` (spec §4). Errors go back as HTTP 500 with the message in "Err"
(what the plugin sent and Docker's plugin client reads) and "Error" (what the IPAM response
struct carries), so Docker prints the real reason whichever way it reads it.
"""
from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
from http.server import BaseHTTPRequestHandler

from .datastore import Datastore, NotFound
from .ipam import AlreadyAssignedError, Ipam, NoAddressesError, PoolNotFoundError
from .model import Endpoint, Pool

SOCKET = "/run/docker/plugins/calico.sock"
MAC = "EE:EE:EE:EE:EE:EE"
GATEWAY_V4 = "169.254.1.1"
POOL_ID_V4, POOL_ID_V6 = "CalicoPoolIPv4", "CalicoPoolIPv6"
ANY_V4, ANY_V6 = "0.0.0.0/0", "::/0"


class PluginError(Exception):
    pass


def veth_names(endpoint_id: str) -> tuple[str, str]:
    return f"cali{endpoint_id[:11]}", f"tmp{endpoint_id[:11]}"


class CalicoPlugin:
    def __init__(self, ds: Datastore, hostname: str) -> None:
        self.ds, self.ipam, self.hostname = ds, Ipam(ds), hostname

    # -- activation and capabilities ---------------------------------------------------------
    def plugin_activate(self, req):
        return {"Implements": ["NetworkDriver", "IpamDriver"]}

    def ipam_get_default_address_spaces(self, req):
        return {"LocalDefaultAddressSpace": "CalicoLocalAddressSpace",
                "GlobalDefaultAddressSpace": "CalicoGlobalAddressSpace"}

    def network_get_capabilities(self, req):
        return {"Scope": "global"}

    # -- IPAM --------------------------------------------------------------------------------
    def ipam_request_pool(self, req):
        v6 = bool(req.get("V6"))
        if req.get("SubPool"):
            raise PluginError("Calico IPAM does not support sub pool configuration on 'docker "
                              "create network'. Calico IP Pools should be configured first and "
                              "IP assignment is from those pre-configured pools.")
        pool = req.get("Pool")
        if pool:
            wanted = ipaddress.ip_network(pool, strict=False)
            if not any(ipaddress.ip_network(p.cidr) == wanted and p.ipam
                       for p in self.ds.pools(6 if v6 else 4)):
                raise PluginError("The requested subnet must match the CIDR of a configured "
                                  "Calico IP Pool.")
            pool_id = pool
        else:
            pool_id = POOL_ID_V6 if v6 else POOL_ID_V4
        anywhere = ANY_V6 if v6 else ANY_V4
        # Pool 0.0.0.0/0 and a gateway in Data: Docker neither checks --ip against the
        # subnet nor asks for a gateway address; Calico IPAM decides
        return {"PoolID": pool_id, "Pool": anywhere, "Data": {"com.docker.network.gateway": anywhere}}

    def ipam_release_pool(self, req):
        return {}

    def ipam_request_address(self, req):
        pool_id, address = req.get("PoolID", ""), req.get("Address") or ""
        v6 = pool_id == POOL_ID_V6 or ":" in pool_id
        if address:
            try:
                self.ipam.assign_ip(address, self.hostname, attributes={})
            except AlreadyAssignedError:
                raise PluginError(f"The address {address} is already in use")
            except PoolNotFoundError:
                raise PluginError(f"The address {address} is not in one of the configured "
                                  "Calico IP pools")
            ip = address
        else:
            if pool_id in (POOL_ID_V4, POOL_ID_V6):
                cidrs = None
            else:
                if not any(p.cidr == str(ipaddress.ip_network(pool_id, strict=False))
                           for p in self.ds.pools(6 if v6 else 4)):
                    raise PluginError("The network references a Calico pool which has been "
                                      "deleted. Please re-instate the Calico pool before using "
                                      "the network.")
                cidrs = [pool_id]
            try:
                ip = self.ipam.auto_assign(self.hostname, 1, pool_cidrs=cidrs)[0]
            except NoAddressesError:
                raise PluginError("There are no available IP addresses in the configured Calico IP pools")
        return {"Address": f"{ip}/{128 if v6 else 32}", "Data": {}}

    def ipam_release_address(self, req):
        address = req.get("Address") or ""
        if address and address not in ("0.0.0.0", "::"):   # Docker also releases its fake gateway
            self.ipam.release_ips([address])
        return {}

    # -- networks ----------------------------------------------------------------------------
    def network_create(self, req):
        network_id = req["NetworkID"]
        self.ds.create_profile(network_id)
        generic = (req.get("Options") or {}).get("com.docker.network.generic") or {}
        for key in ("IPv4Data", "IPv6Data"):
            data = req.get(key) or []
            if len(data) > 1:
                raise PluginError("Cannot create network with multiple IP pools.")
            if data and data[0].get("Gateway") not in (None, "", ANY_V4, ANY_V6):
                # Docker's default IPAM: Calico must still route the subnet, without IPAM
                self.ds.add_pool(Pool(cidr=str(ipaddress.ip_network(data[0]["Pool"], strict=False)),
                                      ipip=bool(generic.get("ipip")),
                                      masquerade=bool(generic.get("nat-outgoing")), ipam=False))
        self.ds.set_network(network_id, req)
        return {}

    def network_delete(self, req):
        network_id = req["NetworkID"]
        stored = self.ds.get_network(network_id) or {}
        if not self.ds.profile_exists(network_id):
            raise PluginError(f"Profile {network_id} does not exist")
        self.ds.remove_profile(network_id)
        for key in ("IPv4Data", "IPv6Data"):
            for data in stored.get(key) or []:
                if data.get("Gateway") not in (None, "", ANY_V4, ANY_V6):
                    cidr = str(ipaddress.ip_network(data["Pool"], strict=False))
                    if any(p.cidr == cidr and not p.ipam for p in self.ds.pools(6 if ":" in cidr else 4)):
                        self.ds.remove_pool(cidr)
        self.ds.remove_network(network_id)
        return {}

    # -- endpoints ---------------------------------------------------------------------------
    def endpoint_create(self, req):
        iface = req.get("Interface") or {}
        v4, v6 = iface.get("Address") or "", iface.get("AddressIPv6") or ""
        if not v4 and not v6:
            raise PluginError("No address assigned for endpoint")
        endpoint_id = req["EndpointID"]
        self.ds.set_endpoint(Endpoint(
            hostname=self.hostname, orchestrator_id="libnetwork", workload_id="libnetwork",
            endpoint_id=endpoint_id, name=veth_names(endpoint_id)[0], mac=MAC,
            profile_ids=(req["NetworkID"],), ipv4_nets=(v4,) if v4 else (),
            ipv6_nets=(v6,) if v6 else ()))
        return {"Interface": {"MacAddress": MAC}}

    def endpoint_oper_info(self, req):
        return {"Value": {}}

    def network_join(self, req):
        host_if, tmp_if = veth_names(req["EndpointID"])
        _ip(["link", "add", host_if, "type", "veth", "peer", "name", tmp_if])
        try:
            _ip(["link", "set", tmp_if, "address", MAC.lower()])
            _ip(["link", "set", host_if, "up"])
        except PluginError:
            _ip(["link", "delete", host_if], check=False)
            raise
        reply = {"InterfaceName": {"SrcName": tmp_if, "DstPrefix": "cali"}}
        stored = self.ds.get_network(req["NetworkID"]) or {}
        v4data = (stored.get("IPv4Data") or [{}])[0]
        if v4data.get("Gateway") in (ANY_V4, None) and stored:
            # Calico IPAM: a fake next hop the host answers by proxy ARP
            reply.update(Gateway=GATEWAY_V4, StaticRoutes=[
                {"Destination": f"{GATEWAY_V4}/32", "RouteType": 1, "NextHop": ""}])
        else:
            reply.update(Gateway="", GatewayIPv6="")
        return reply

    def network_leave(self, req):
        _ip(["link", "delete", veth_names(req["EndpointID"])[0]], check=False)
        return {}

    def endpoint_delete(self, req):
        try:
            self.ds.remove_endpoint(self.hostname, req["EndpointID"])
        except NotFound:
            pass   # already gone: Docker may repeat a delete after a failure
        return {}

    def discover(self, req):
        return {}


ROUTES = {
    "/Plugin.Activate": "plugin_activate",
    "/IpamDriver.GetDefaultAddressSpaces": "ipam_get_default_address_spaces",
    "/IpamDriver.RequestPool": "ipam_request_pool",
    "/IpamDriver.ReleasePool": "ipam_release_pool",
    "/IpamDriver.RequestAddress": "ipam_request_address",
    "/IpamDriver.ReleaseAddress": "ipam_release_address",
    "/NetworkDriver.GetCapabilities": "network_get_capabilities",
    "/NetworkDriver.CreateNetwork": "network_create",
    "/NetworkDriver.DeleteNetwork": "network_delete",
    "/NetworkDriver.CreateEndpoint": "endpoint_create",
    "/NetworkDriver.EndpointOperInfo": "endpoint_oper_info",
    "/NetworkDriver.Join": "network_join",
    "/NetworkDriver.Leave": "network_leave",
    "/NetworkDriver.DeleteEndpoint": "endpoint_delete",
    "/NetworkDriver.DiscoverNew": "discover",
    "/NetworkDriver.DiscoverDelete": "discover",
}


def _ip(args: list[str], check: bool = True) -> None:
    cp = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and cp.returncode != 0:
        raise PluginError(f"ip {' '.join(args)}: {cp.stderr.strip()}")


class _Handler(BaseHTTPRequestHandler):
    plugin: CalicoPlugin

    def do_POST(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        method = ROUTES.get(self.path)
        if method is None:   # e.g. IpamDriver.GetCapabilities: not implemented by v0.9.0
            return self._reply(404, {"Err": f"{self.path} is not implemented"})
        try:
            req = json.loads(body or b"{}") or {}
            status, resp = 200, getattr(self.plugin, method)(req)
        except PluginError as exc:
            status, resp = 500, {"Err": str(exc), "Error": str(exc)}
        except Exception as exc:   # a bug must not take the plugin down
            status, resp = 500, {"Err": f"{type(exc).__name__}: {exc}", "Error": f"{type(exc).__name__}: {exc}"}
        print(f"libnetwork: {self.path} {status} {json.dumps(resp)[:300]}", flush=True)
        self._reply(status, resp)

    def _reply(self, status: int, resp: dict) -> None:
        data = json.dumps(resp).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.docker.plugins.v1.2+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):   # one line per request is printed by do_POST
        pass

    def address_string(self):
        return "docker"


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(ds: Datastore, hostname: str, path: str = SOCKET) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)
    handler = type("Handler", (_Handler,), {"plugin": CalicoPlugin(ds, hostname)})
    with _Server(path, handler) as server:
        print(f"libnetwork: serving {path} for host {hostname}", flush=True)
        server.serve_forever()


def main() -> int:
    # PID 1 of its container: without a handler SIGTERM would be ignored and `docker stop`
    # would wait out its timeout
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    hostname = os.environ.get("HOSTNAME") or socket.gethostname()
    serve(Datastore.from_env(os.environ), hostname)
    return 0


if __name__ == "__main__":
    sys.exit(main())
