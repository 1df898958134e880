"""Test backend for the end-to-end tests: a real HTTP server (aiohttp).

Run as a subprocess: ``python backend.py [--port N]``. It binds 127.0.0.1 (port 0 = any
free port) and prints one line ``READY <port>`` on stdout once it accepts connections.

Routes (any method, any host):
- ``/ws...``      WebSocket echo (text and binary); a plain GET without upgrade gets 400.
- ``/sse...``     ``text/event-stream``: ``data: first`` at once, then after ``interval_ms``
                  (default 1000) ``data: second``, then the stream ends.
- ``/stream...``  chunked body: ``chunks`` (default 5) lines ``chunk <i>``, ``interval_ms``
                  (default 100) apart.
- ``size=<n>``    on any other path: a body of ``n`` zero bytes with ``Content-Length`` (without it
                  when ``chunked=1``), written 1 MiB at a time; honours one ``Range: bytes=a-b``
                  (206 with ``Content-Range``, 416 ``bytes */n`` when unsatisfiable).
- anything else   ``status=<code>`` (default 200), ``delay_ms=<n>`` (sleep before
                  answering); body ``<METHOD> <path>\\n`` (nothing for HEAD, 204, 304);
                  a 3xx carries ``Location: /moved``.
Every response carries ``X-Backend: 1``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiohttp import WSMsgType, web

SSE_FIRST = b"data: first\n\n"
SSE_SECOND = b"data: second\n\n"


def _int_query(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    return int(raw)


async def websocket_echo(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse()
    ws.headers["X-Backend"] = "1"
    if not ws.can_prepare(request).ok:
        return web.Response(status=400, text="websocket upgrade expected\n", headers={"X-Backend": "1"})
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
        elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
    return ws


async def sse(request: web.Request) -> web.StreamResponse:
    interval = _int_query(request, "interval_ms", 1000) / 1000.0
    resp = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Backend": "1",
        },
    )
    await resp.prepare(request)
    await resp.write(SSE_FIRST)
    await asyncio.sleep(interval)
    await resp.write(SSE_SECOND)
    await resp.write_eof()
    return resp


async def stream(request: web.Request) -> web.StreamResponse:
    chunks = _int_query(request, "chunks", 5)
    interval = _int_query(request, "interval_ms", 100) / 1000.0
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain", "X-Backend": "1"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for i in range(chunks):
        if i:
            await asyncio.sleep(interval)
        await resp.write(f"chunk {i}\n".encode())
    await resp.write_eof()
    return resp


CHUNK = bytes(1 << 20)


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) of ``bytes=a-b`` / ``bytes=a-`` within ``size``; None if unsatisfiable."""
    spec = header.strip().removeprefix("bytes=")
    first_s, _, last_s = spec.partition("-")
    first = int(first_s) if first_s else 0
    last = int(last_s) if last_s else size - 1
    if first >= size or first > last:
        return None
    return first, min(last, size - 1)


async def sized(request: web.Request, size: int) -> web.StreamResponse:
    status, first, length = 200, 0, size
    headers = {"X-Backend": "1", "Content-Type": "application/octet-stream"}
    if "Range" in request.headers:
        rng = _byte_range(request.headers["Range"], size)
        if rng is None:
            return web.Response(status=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        first, last = rng
        status, length = 206, last - first + 1
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    resp = web.StreamResponse(status=status, headers=headers)
    if request.query.get("chunked") == "1":
        resp.enable_chunked_encoding()
    else:
        resp.content_length = length
    await resp.prepare(request)
    left = length
    while left > 0:
        n = min(left, len(CHUNK))
        await resp.write(CHUNK[:n])
        left -= n
    await resp.write_eof()
    return resp


async def generic(request: web.Request) -> web.StreamResponse:
    if request.query.get("size"):
        return await sized(request, _int_query(request, "size", 0))
    status = _int_query(request, "status", 200)
    delay_ms = _int_query(request, "delay_ms", 0)
    if delay_ms > 0:
        await asyncio.sleep(delay_ms / 1000.0)
    headers = {"X-Backend": "1"}
    if 300 <= status < 400:
        headers["Location"] = "/moved"
    if request.method == "HEAD" or status in (204, 304) or status < 200:
        return web.Response(status=status, headers=headers)
    return web.Response(
        status=status,
        headers=headers,
        body=f"{request.method} {request.path}\n".encode(),
        content_type="text/plain",
    )


async def dispatch(request: web.Request) -> web.StreamResponse:
    path = request.path
    if path.startswith("/ws"):
        return await websocket_echo(request)
    if path.startswith("/sse"):
        return await sse(request)
    if path.startswith("/stream"):
        return await stream(request)
    return await generic(request)


async def main(port: int) -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", dispatch)
    await serve_app(app, port)


async def serve_app(app: web.Application, port: int) -> None:
    """Serves `app` on 127.0.0.1:`port` (0: any) and prints `READY <port>` for the harness."""
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"READY {bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        asyncio.run(main(args.port))
    except KeyboardInterrupt:
        sys.exit(0)
