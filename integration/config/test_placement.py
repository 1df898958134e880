"""Where the plugin sits decides what it sees: attached at the entry point
(`entryPoints.<ep>.http.middlewares`, the chart's `ports.<ep>.middlewares`), it runs before every
router's own middlewares, so a request that `rateLimit` refuses is still one span, an error under
`errorStatuses: 400-599`; listed after `rateLimit` in a router it never sees the 429s. A request no
router matches is answered 404 by Traefik itself, before any middleware: a catch-all router
(priority 1) to a default backend answering 404, as ingress-nginx's default backend does, makes
those requests spans too (docs/migration.md, "Where the middleware goes")."""

from __future__ import annotations

import http.server
import threading
import time
from collections import Counter
from typing import Iterator

import pytest
import requests

from conftest import TraefikFactory
from harness import Route

N = 12
LIMIT = {"rateLimit": {"average": 1, "period": "1m", "burst": 1}}
PLUGIN = {"service": "edge", "env": "test", "mode": "log", "errorStatuses": "400-599"}


class NotFound(http.server.BaseHTTPRequestHandler):
    """A default backend: 404 for everything, like ingress-nginx's."""

    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "10")
        self.end_headers()
        self.wfile.write(b"not found\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def default_backend() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_entry_point_placement_sees_every_routed_request(traefik_factory: TraefikFactory,
                                                         default_backend: str) -> None:
    ready = "Host(`ready.test`)"
    t = traefik_factory(
        # `web` and `late` answer the readiness probes only; the routers under test follow.
        routes=[Route("web", rule=ready), Route("late", rule=ready)],
        middlewares={"dd": PLUGIN, "dd-late": {**PLUGIN, "service": "late"}},
        extra_middlewares={"limit": LIMIT, "limit-late": LIMIT},
        entrypoint_middlewares={"web": ["dd@file"]},
        extra_routers={
            "shop": {"rule": "Host(`shop.test`)", "entryPoints": ["web"], "middlewares": ["limit"],
                     "service": "backend"},
            "default": {"rule": "PathPrefix(`/`)", "priority": 1, "entryPoints": ["web"],
                        "service": "default-backend"},
            "shop-late": {"rule": "Host(`shop.test`)", "entryPoints": ["late"],
                          "middlewares": ["limit-late", "dd-late"], "service": "backend"},
        },
        extra_services={"default-backend": {"loadBalancer": {"servers": [{"url": default_backend}]}}},
    )

    def send(route: str, host: str, tag: str, n: int) -> Counter[int]:
        return Counter(requests.get(f"{t.url(route)}/p/{tag}/{i}", headers={"Host": host}, timeout=10).status_code
                       for i in range(n))

    at_entry = send("web", "shop.test", "entry", N)
    unrouted_caught = send("web", "nobody.test", "caught", 4)
    after_limit = send("late", "shop.test", "late", N)
    unrouted = send("late", "nobody.test", "unrouted", 3)
    print(f"\nentry point: {dict(at_entry)}; catch-all: {dict(unrouted_caught)}; "
          f"after rateLimit: {dict(after_limit)}; no router: {dict(unrouted)}")
    # The limiter lets one through per minute: the rest are refused, on both entry points.
    assert at_entry[429] >= N - 2 and after_limit[429] >= N - 2
    assert unrouted_caught == Counter({404: 4}) and unrouted == Counter({404: 3})

    def records(tag: str) -> list[dict]:
        return [r.data for r in t.records() if str(r.data.get("RequestPath", "")).startswith(f"/p/{tag}/")]

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (len(records("entry")) < N or len(records("caught")) < 4
                                           or len(records("late")) < after_limit[200]):
        time.sleep(0.1)
    time.sleep(1)  # a late duplicate would show
    entry, caught, late = records("entry"), records("caught"), records("late")
    # At the entry point: every request one span, the 429s errors, as the client saw them.
    assert Counter(r["DownstreamStatus"] for r in entry) == at_entry
    assert sum(r["dd.error"] for r in entry) == at_entry[429]
    assert {r["dd.service"] for r in entry} == {"edge"}
    # The catch-all's 404s are spans of their own host.
    assert [(r["RequestHost"], r["DownstreamStatus"], r["dd.error"]) for r in caught] == [("nobody.test", 404, 1)] * 4
    # After rateLimit: only what it let through; no router at all: nothing.
    assert Counter(r["DownstreamStatus"] for r in late) == Counter({200: after_limit[200]})
    assert records("unrouted") == []
