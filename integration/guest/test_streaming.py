"""Streams and upgrades pass through the middleware unchanged, and still give one line each.

- WebSocket: echo works, one line with status 101 / status_source "upgrade".
- SSE (Accept: text/event-stream): events arrive as they are sent (not held back by
  buffering), the body is byte-identical, one line with status 0 / status_source "unknown".
- SSE whose client leaves mid-stream: one line with status 499 / status_source "aborted".
- A chunked download under `unbufferedPaths` streams too; without it it is buffered
  but byte-identical.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from clients import http_get, id_problems
from harness import DD_CONFIG, Route, Traefik

SSE_BODY = b"data: first\n\ndata: second\n\n"


@pytest.fixture(scope="module")
def traefik(module_traefik_factory) -> Traefik:
    return module_traefik_factory(
        middlewares={"dd": dict(DD_CONFIG), "dd-unbuf": {**DD_CONFIG, "unbufferedPaths": ["/stream/unbuf"]}},
        routes=[Route("web", ["dd"]), Route("unbuf", ["dd-unbuf"]), Route("bare")],
    )


def one_record(t: Traefik, path: str, timeout: float = 8.0):
    recs = [r for r in t.wait_records([path], timeout=timeout) if r.data.get("RequestPath") == path]
    assert len(recs) == 1, f"want exactly one line for {path}, got {[r.text for r in recs]}"
    rec = recs[0]
    assert rec.text.startswith('{"marker":"traefik-datadog","schema":1,')
    assert id_problems(rec.data) == []
    return rec


def check_common(rec, *, path: str, host: str, method: str = "GET", router: str = "web@file") -> None:
    d = rec.data
    got = {k: d.get(k) for k in ("RequestHost", "RequestMethod", "RequestPath", "RequestScheme", "RequestProtocol",
                                 "ClientHost", "dd.service", "dd.env", "dd.version", "dd.name", "dd.resource")}
    assert got == {
        "RequestHost": host, "RequestMethod": method, "RequestPath": path, "RequestScheme": "http",
        "RequestProtocol": "HTTP/1.1", "ClientHost": "127.0.0.1", "dd.service": "edge", "dd.env": "test",
        "dd.version": "1.2.3", "dd.name": "traefik.request", "dd.resource": host,
    }
    assert rec.host.get("routerName") == router


def test_websocket_echo_and_one_upgrade_line(traefik: Traefik) -> None:
    path = "/ws/echo-1"
    messages = ["one", "two", "three"]

    async def session() -> tuple[list[str], float]:
        async with aiohttp.ClientSession() as s:
            t0 = time.monotonic()
            async with s.ws_connect(
                f"{traefik.url('web')}{path}?token=abc", headers={"Host": "ws.test"}, timeout=aiohttp.ClientWSTimeout(ws_close=5)
            ) as ws:
                echoes = []
                for m in messages:
                    await ws.send_str(m)
                    msg = await ws.receive(timeout=5)
                    assert msg.type == aiohttp.WSMsgType.TEXT
                    echoes.append(msg.data)
                await asyncio.sleep(0.2)
                await ws.close()
            return echoes, time.monotonic() - t0

    t_before = time.time_ns()
    echoes, elapsed = asyncio.run(session())
    assert echoes == messages

    rec = one_record(traefik, path)
    check_common(rec, path=path, host="ws.test")
    d = rec.data
    assert (d["DownstreamStatus"], d["status_source"], d["dd.error"], d["dd.error_type"]) == (101, "upgrade", 0, "")
    assert d["start_ns"] >= t_before - 5_000_000
    # The line is written when the connection ends: it covers the whole session.
    assert 200_000_000 <= d["Duration"] <= int((elapsed + 0.25) * 1e9)


async def _read_stream(url: str, headers: dict[str, str], first_marker: bytes) -> tuple[bytes, float, float, int, str]:
    """(body, seconds to first_marker, seconds to end, status, content-type)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as s:
        t0 = time.monotonic()
        async with s.get(url, headers=headers) as resp:
            body = b""
            first_at = None
            async for chunk in resp.content.iter_any():
                body += chunk
                if first_at is None and first_marker in body:
                    first_at = time.monotonic() - t0
            end = time.monotonic() - t0
            return body, (first_at if first_at is not None else end), end, resp.status, resp.headers.get("Content-Type", "")


def test_sse_streams_through_and_gives_one_line(traefik: Traefik, backend) -> None:
    path = "/sse/events-1"
    headers = {"Host": "sse.test", "Accept": "text/event-stream"}
    direct, _, _, direct_status, _ = asyncio.run(_read_stream(f"{backend.url}{path}", headers, b"data: first"))
    assert (direct_status, direct) == (200, SSE_BODY)

    t_before = time.time_ns()
    body, first_at, end, status, ctype = asyncio.run(_read_stream(f"{traefik.url('web')}{path}", headers, b"data: first"))
    assert (status, ctype, body) == (200, "text/event-stream", direct)
    assert end >= 0.9, f"the stream lasts ~1 s, ended after {end:.3f}s"
    # Relative to the end, so a slow machine delays both alike: held back, they would coincide.
    assert end - first_at >= 0.5, f"first event after {first_at:.3f}s of {end:.3f}s: the response was held back"

    rec = one_record(traefik, path)
    check_common(rec, path=path, host="sse.test")
    d = rec.data
    assert (d["DownstreamStatus"], d["status_source"], d["dd.error"], d["dd.error_type"]) == (0, "unknown", 0, "")
    assert d["start_ns"] >= t_before - 5_000_000
    assert 900_000_000 <= d["Duration"] <= int((end + 0.25) * 1e9)


def test_sse_client_leaving_mid_stream_gives_one_aborted_line(traefik: Traefik) -> None:
    path = "/sse/leave-1"

    async def leave_after_first_event() -> bytes:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{traefik.url('web')}{path}?interval_ms=1500",
                             headers={"Host": "sse.test", "Accept": "text/event-stream"}) as resp:
                got = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5)
                resp.close()  # drop the connection while the backend still streams
                return got

    assert asyncio.run(leave_after_first_event()) == b"data: first\n\n"
    rec = one_record(traefik, path, timeout=8.0)
    check_common(rec, path=path, host="sse.test")
    d = rec.data
    assert (d["DownstreamStatus"], d["status_source"]) == (499, "aborted")
    assert (d["dd.error"], d["dd.error_type"]) == (0, "client_error")
    assert d["Duration"] < 1_500_000_000, "the line must come when the client leaves, not when the stream ends"


def test_chunked_stream_body_unchanged(traefik: Traefik, backend) -> None:
    target = "/stream/plain-1?chunks=4&interval_ms=50"
    want = b"chunk 0\nchunk 1\nchunk 2\nchunk 3\n"
    assert http_get(backend.port, target)[2] == want
    status, headers, body = http_get(traefik.port("web"), target, headers={"Host": "dl.test"})
    assert (status, body, headers.get("X-Backend")) == (200, want, "1")
    rec = one_record(traefik, "/stream/plain-1")
    check_common(rec, path="/stream/plain-1", host="dl.test")
    assert (rec.data["DownstreamStatus"], rec.data["status_source"]) == (200, "buffered")


def test_unbuffered_path_streams(traefik: Traefik) -> None:
    path = "/stream/unbuf/1"
    body, first_at, end, status, _ = asyncio.run(
        _read_stream(f"{traefik.url('unbuf')}{path}?chunks=3&interval_ms=500", {"Host": "dl.test"}, b"chunk 0\n")
    )
    assert (status, body) == (200, b"chunk 0\nchunk 1\nchunk 2\n")
    assert end >= 0.9
    assert end - first_at >= 0.5, (
        f"first chunk after {first_at:.3f}s of {end:.3f}s: unbufferedPaths did not stop buffering")
    rec = one_record(traefik, path)
    check_common(rec, path=path, host="dl.test", router="unbuf@file")
    assert (rec.data["DownstreamStatus"], rec.data["status_source"]) == (0, "unknown")
