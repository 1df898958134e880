"""The status probe (probe/, a Go middleware Traefik interprets) placed after the plugin gives
responses the plugin does not buffer their exact status, without changing what the client gets.

Route ``probed``: middlewares [dd (unbufferedPaths "/": nothing buffered), probe]. Each response
is compared with the same request on the bare route: status, body and headers identical, the
probe's header never sent to the client; each gives one line whose status is the backend's with
status_source "probe". SSE still streams (first event long before the end), a WebSocket is 101.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from clients import http_get
from harness import DD_CONFIG, PROBE_DIR, PROBE_MODULE, Route, Traefik

PROBE_HEADER = "X-Traefik-Datadog-Status"


@pytest.fixture(scope="module")
def traefik(module_traefik_factory) -> Traefik:
    return module_traefik_factory(
        middlewares={"dd": {**DD_CONFIG, "unbufferedPaths": ["/"]}},
        routes=[Route("probed", ["dd", "probe"]), Route("bare")],
        extra_plugins={"statusprobe": (PROBE_MODULE, PROBE_DIR)},
        extra_middlewares={"probe": {"plugin": {"statusprobe": {}}}},
    )


def one_record(t: Traefik, path: str):
    recs = [r for r in t.wait_records([path], timeout=10) if r.data.get("RequestPath") == path]
    assert len(recs) == 1, f"want exactly one line for {path}, got {[r.text for r in recs]}"
    return recs[0].data


COMPARED = ("Content-Type", "Content-Length", "Content-Range", "Location", "X-Backend")


@pytest.mark.parametrize(
    ("target", "headers", "status", "length"),
    [
        ("/api/ok-1", {}, 200, None),
        ("/api/created-1?status=201", {}, 201, None),
        ("/api/moved-1?status=301", {}, 301, None),
        ("/api/missing-1?status=404", {}, 404, None),
        ("/api/down-1?status=503", {}, 503, None),
        ("/files/one-1.iso?size=3000000", {}, 200, 3_000_000),
        ("/files/part-1.bin?size=1000", {"Range": "bytes=10-19"}, 206, 10),
        ("/files/part-2.bin?size=1000", {"Range": "bytes=5000-"}, 416, None),
    ],
)
def test_exact_status_of_unbuffered_responses(traefik: Traefik, target, headers, status, length) -> None:
    bare = http_get(traefik.port("bare"), target, headers={"Host": "probe.test", **headers})
    got = http_get(traefik.port("probed"), target, headers={"Host": "probe.test", **headers})
    assert got[0] == bare[0] == status
    assert got[2] == bare[2]
    assert {k: got[1].get(k) for k in COMPARED} == {k: bare[1].get(k) for k in COMPARED}
    assert PROBE_HEADER not in got[1] and PROBE_HEADER.lower() not in {k.lower() for k in got[1]}
    d = one_record(traefik, target.split("?")[0])
    assert (d["DownstreamStatus"], d["status_source"]) == (status, "probe")
    assert d["dd.error"] == (1 if status >= 500 else 0)
    if length is not None:
        assert d["ContentLength"] == length


def test_sse_streams_with_the_probe_and_is_200(traefik: Traefik) -> None:
    path = "/sse/probed-1"

    async def read() -> tuple[bytes, float, float, dict[str, str]]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as s:
            t0 = time.monotonic()
            async with s.get(f"{traefik.url('probed')}{path}?interval_ms=1500",
                             headers={"Host": "sse.test", "Accept": "text/event-stream"}) as resp:
                body, first_at = b"", None
                async for chunk in resp.content.iter_any():
                    body += chunk
                    if first_at is None and b"data: first" in body:
                        first_at = time.monotonic() - t0
                return body, first_at or 99.0, time.monotonic() - t0, dict(resp.headers)

    body, first_at, end, headers = asyncio.run(read())
    assert body == b"data: first\n\ndata: second\n\n"
    assert end >= 1.4
    # The stream lasts 1.5 s: a probe that lost Flush would hold the first event to the end.
    assert first_at < end - 0.7, f"first event after {first_at:.3f}s of {end:.3f}s: held back"
    assert PROBE_HEADER not in headers
    d = one_record(traefik, path)
    assert (d["DownstreamStatus"], d["status_source"]) == (200, "probe")


def test_websocket_through_the_probe_is_101(traefik: Traefik) -> None:
    path = "/ws/probed-1"

    async def session() -> list[str]:
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(f"{traefik.url('probed')}{path}", headers={"Host": "ws.test"}) as ws:
                out = []
                for m in ("a", "b"):
                    await ws.send_str(m)
                    msg = await ws.receive(timeout=5)
                    out.append(msg.data)
                await ws.close()
                return out

    assert asyncio.run(session()) == ["a", "b"]
    d = one_record(traefik, path)
    assert (d["DownstreamStatus"], d["status_source"]) == (101, "probe")
