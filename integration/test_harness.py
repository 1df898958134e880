"""The harness itself, without the plugin: the line parser on lines shaped exactly like
Traefik 3.7's two log formats, and the backend behind a bare Traefik route."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
import requests

import lines
from harness import Route

RECORD = (
    '{"marker":"traefik-datadog","schema":1,"StartUTC":"2026-11-25T14:33:47.123456Z",'
    '"start_ns":1795617227123456789,"Duration":1500000,"RequestHost":"a.test","RequestPath":"/r/1",'
    '"msg":"quote \\" backslash \\\\ tab \\t unicode \\u00e9 equals a=b"}'
)
HOST_FIELDS = {
    "entryPointName": "web",
    "middlewareName": "dd@file",
    "middlewareType": "wasm",
    "routerName": "web@file",
}


def json_line(level: str, message: str) -> str:
    outer = {"level": level, **HOST_FIELDS, "time": "2026-11-25T14:33:47Z", "message": message}
    return json.dumps(outer, separators=(",", ":"))


def console_line(level: str, message: str, color: bool) -> str:
    fields = sorted(HOST_FIELDS.items())
    if not color:
        return f"2026-11-25T14:33:47Z {level} {message} " + " ".join(f"{k}={v}" for k, v in fields)
    colour = {"INF": "32", "ERR": "31", "WRN": "33"}[level]
    return (
        f"\x1b[90m2026-11-25T14:33:47Z\x1b[0m \x1b[{colour}m{level}\x1b[0m \x1b[1m{message}\x1b[0m "
        + " ".join(f"\x1b[36m{k}=\x1b[0m{v}" for k, v in fields)
    )


EXPECTED = json.loads(RECORD)


@pytest.mark.parametrize("fmt", ["json", "console-color", "console-nocolor"])
def test_parser_decodes_records_and_host_fields(fmt: str) -> None:
    if fmt == "json":
        line = json_line("info", RECORD)
    else:
        line = console_line("INF", RECORD, color=(fmt == "console-color"))
    noise = [
        json_line("info", "Starting provider *file.Provider") if fmt == "json" else "2026 INF Starting provider",
        "",
        "not a log line at all",
    ]
    out = "\n".join(noise + [line, line]) + "\n"
    recs = lines.parse_records(out)
    assert len(recs) == 2
    rec = recs[0]
    assert rec.data == EXPECTED
    assert rec.text == RECORD
    assert rec.text.startswith(lines.RECORD_PREFIX)
    assert rec.lead == ""
    assert rec.line_no == 4
    assert rec.host["level"] == "info"
    for k, v in HOST_FIELDS.items():
        assert rec.host[k] == v


def test_parser_rejects_broken_record() -> None:
    broken = '{"marker":"traefik-datadog","schema":1,"RequestPath":"/r/1"'
    with pytest.raises(lines.LineFormatError):
        lines.parse_records(json_line("info", broken) + "\n")
    with pytest.raises(lines.LineFormatError):
        lines.parse_records(console_line("INF", broken, color=True) + "\n")


@pytest.mark.parametrize("fmt", ["json", "console-color", "console-nocolor"])
def test_parser_finds_config_errors(fmt: str) -> None:
    text = 'traefik-datadog: invalid config: key "bogus": unknown key; known keys are service, env'
    if fmt == "json":
        line = json_line("error", text)
    else:
        line = console_line("ERR", text, color=(fmt == "console-color"))
    errs = lines.parse_config_errors("noise\n" + line + "\n")
    assert len(errs) == 1
    assert errs[0].text == text
    assert errs[0].host["level"] == "error"
    assert errs[0].host["middlewareName"] == "dd@file"
    assert errs[0].host["routerName"] == "web@file"
    assert errs[0].line_no == 2


def test_format_start_utc() -> None:
    assert lines.format_start_utc(1795617227123456789) == "2026-11-25T14:33:47.123456Z"
    assert lines.format_start_utc(0) == "1970-01-01T00:00:00.000000Z"


def test_backend_through_bare_traefik(traefik_factory) -> None:
    t = traefik_factory(routes=[Route("bare")], middlewares={})
    base = t.url("bare")
    r = requests.get(f"{base}/x/1?status=503&q=1", headers={"Host": "a.test"}, timeout=5)
    assert (r.status_code, r.text, r.headers["X-Backend"]) == (503, "GET /x/1\n", "1")
    r = requests.post(f"{base}/x/2?status=301", headers={"Host": "b.test"}, allow_redirects=False, timeout=5)
    assert (r.status_code, r.headers["Location"], r.text) == (301, "/moved", "POST /x/2\n")
    r = requests.head(f"{base}/x/3", headers={"Host": "c.test"}, timeout=5)
    assert (r.status_code, r.content) == (200, b"")
    r = requests.get(f"{base}/sse/1", headers={"Accept": "text/event-stream"}, timeout=5)
    assert r.content == b"data: first\n\ndata: second\n\n"
    assert r.headers["Content-Type"] == "text/event-stream"
    r = requests.get(f"{base}/stream/1?chunks=3&interval_ms=10", timeout=5)
    assert r.content == b"chunk 0\nchunk 1\nchunk 2\n"
    async def ws_echo() -> str:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{base}/ws/1", headers={"Host": "ws.test"}) as ws:
                await ws.send_str("hello")
                msg = await ws.receive(timeout=5)
                return msg.data

    assert asyncio.run(ws_echo()) == "hello"
    # No plugin configured: no record lines, and Traefik's own lines are not mistaken for records.
    assert t.records(include_ready=True) == []
    assert t.config_errors() == []
