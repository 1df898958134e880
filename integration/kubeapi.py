"""A small stand-in for the Kubernetes API, enough for Traefik's kubernetescrd provider out of
cluster (plain HTTP, no token): it answers LIST and WATCH (including watch-list requests,
`sendInitialEvents=true`) for the collections Traefik 3.7 asks for, cluster-wide, in JSON. The
objects are fixed at start; a watch sends them, then its initial-events-end bookmark, then stays
open and quiet until the server stops.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

RESOURCE_VERSION = "100"

# Collection path -> (apiVersion, kind), as Traefik 3.7.15 asks for them.
COLLECTIONS: dict[str, tuple[str, str]] = {
    **{f"/apis/traefik.io/v1alpha1/{plural}": ("traefik.io/v1alpha1", kind) for plural, kind in [
        ("ingressroutes", "IngressRoute"), ("ingressroutetcps", "IngressRouteTCP"),
        ("ingressrouteudps", "IngressRouteUDP"), ("middlewares", "Middleware"),
        ("middlewaretcps", "MiddlewareTCP"), ("serverstransports", "ServersTransport"),
        ("serverstransporttcps", "ServersTransportTCP"), ("tlsoptions", "TLSOption"),
        ("tlsstores", "TLSStore"), ("traefikservices", "TraefikService")]},
    "/api/v1/services": ("v1", "Service"),
    "/api/v1/configmaps": ("v1", "ConfigMap"),
    "/api/v1/nodes": ("v1", "Node"),
    "/api/v1/secrets": ("v1", "Secret"),
    "/apis/discovery.k8s.io/v1/endpointslices": ("discovery.k8s.io/v1", "EndpointSlice"),
}


def collection_of(obj: dict[str, Any]) -> str:
    for path, (api, kind) in COLLECTIONS.items():
        if (obj["apiVersion"], obj["kind"]) == (api, kind):
            return path
    raise ValueError(f"no collection serves {obj['apiVersion']} {obj['kind']}")


def stored(obj: dict[str, Any], n: int) -> dict[str, Any]:
    """The object as the API server returns it: the manifest plus server-set metadata."""
    meta = {**obj["metadata"], "uid": f"00000000-0000-0000-0000-{n:012d}",
            "resourceVersion": RESOURCE_VERSION, "creationTimestamp": "2026-01-01T00:00:00Z"}
    return {**obj, "metadata": meta}


class KubeAPI:
    def __init__(self, objects: list[dict[str, Any]]):
        self.items: dict[str, list[dict[str, Any]]] = {p: [] for p in COLLECTIONS}
        for n, obj in enumerate(objects, 1):
            self.items[collection_of(obj)].append(stored(obj, n))
        self.requests: list[str] = []
        self.stopping = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                api.requests.append(self.path)
                url = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                if url.path not in COLLECTIONS:
                    self.send_json(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                         "reason": "NotFound", "code": 404})
                    return
                if query.get("watch") in ("true", "1"):
                    self.watch(url.path, query.get("sendInitialEvents") == "true")
                else:
                    api_version, kind = COLLECTIONS[url.path]
                    self.send_json(200, {"kind": f"{kind}List", "apiVersion": api_version,
                                         "metadata": {"resourceVersion": RESOURCE_VERSION},
                                         "items": api.items[url.path]})

            def send_json(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def chunk(self, event: dict[str, Any]) -> None:
                data = json.dumps(event).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def watch(self, path: str, initial: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    if initial:
                        for obj in api.items[path]:
                            self.chunk({"type": "ADDED", "object": obj})
                        api_version, kind = COLLECTIONS[path]
                        self.chunk({"type": "BOOKMARK", "object": {
                            "kind": kind, "apiVersion": api_version,
                            "metadata": {"resourceVersion": RESOURCE_VERSION,
                                         "annotations": {"k8s.io/initial-events-end": "true"}}}})
                    while not api.stopping.wait(0.5):
                        pass
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass  # Traefik closed the watch

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "KubeAPI":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        time.sleep(0.6)
        self.server.shutdown()
        self.server.server_close()
