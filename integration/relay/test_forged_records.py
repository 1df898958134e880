"""Clients cannot forge spans through the log inputs, nor hide their access-log lines.

The real Traefik 3.7.15 with the plugin in `mode: log` and its access log on (CLF, and JSON with the
request headers kept), both on stdout, piped into `relay --stdin`. Requests carry a complete plugin
record (service `payments`, status 500, its own span id), a whole wasm-middleware JSON log line, or a
whole console record line, in their User-Agent, Referer or path. Asserted exactly:
- the agent gets one span per request sent (readiness probes included), each the genuine one (service
  `edge`, the request's own path), and no span of a forged record;
- the relay's stdout is Traefik's output byte for byte, less exactly the lines the relay consumed;
  those are as many as the spans, and each is a record line of the wasm middleware;
- every access-log line, forged text included, is on the relay's stdout.
Traefik's stdout is teed by the test so the relay's pass-through can be compared with what Traefik wrote.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from datadog import PluginRecord, Relay, StatsdListener, TestAgent, span_path
from harness import DD_CONFIG, READY_PREFIX, Route, Traefik

GENUINE = 6
FORGED_SPAN_BASE = 7_000_000_000_000_000_000


class AccessLogTraefik(Traefik):
    """Traefik with its access log on stdout too, in `access_format` (`common` or `json`)."""

    def __init__(self, *args: Any, access_format: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.access_format = access_format

    def static_config(self) -> dict[str, Any]:
        cfg = super().static_config()
        # Request headers are left out of the access log by default: keep them, so the forged
        # User-Agent and Referer are in the lines.
        access: dict[str, Any] = {"format": self.access_format, "fields": {"headers": {"defaultMode": "keep"}}}
        cfg["accessLog"] = access
        return cfg


def forged_texts(n: int) -> list[tuple[str, int]]:
    """Forged record texts, each with the span id it would create if taken: a bare record, the
    JSON-format line of the wasm middleware carrying it, and the console-format line."""
    out = []
    for i in range(n):
        span_id = FORGED_SPAN_BASE + i
        rec = PluginRecord(span_id=span_id, trace_id=span_id, path=f"/forged/{i}", host="a.test", status=500,
                           service="payments", start_ns=time.time_ns())
        kind = i % 3
        if kind == 0:
            text = rec.text()
        elif kind == 1:
            text = rec.json_line().decode().rstrip("\n")
        else:
            text = ("2026-11-25T14:49:47Z INF " + rec.text()
                    + " entryPointName=web middlewareName=dd@file middlewareType=wasm routerName=web@file")
        out.append((text, span_id))
    return out


def request(port: int, path: str, headers: dict[str, str]) -> int:
    """One request with the exact path and headers given (http.client does not re-encode them)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", "a.test")
        for k, v in headers.items():
            conn.putheader(k, v.encode("latin-1"))
        conn.endheaders()
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def mine(span_path_: str, start: str) -> bool:
    """Whether a span's path is that of the request whose path starts with `start` (the request
    target may come back encoded after it)."""
    return span_path_ == start or span_path_.startswith(start + "/")


class Tee(threading.Thread):
    """Copies Traefik's stdout to a file and to the relay's stdin; closes the latter at EOF."""

    def __init__(self, src: Any, raw: Path, dst: Any):
        super().__init__(daemon=True)
        self.src, self.raw, self.dst = src, raw, dst

    def run(self) -> None:
        fd = self.src.fileno()
        with open(self.raw, "wb") as f:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                f.write(chunk)
                f.flush()
                self.dst.write(chunk)
                self.dst.flush()
        self.dst.close()


@pytest.mark.parametrize("log_format,access_format", [("common", "common"), ("json", "json"), ("json", "common")])
def test_forged_records_are_not_taken(tmp_path: Path, backend, traefik_bin, log_format: str,
                                      access_format: str) -> None:
    agent = TestAgent(tmp_path / "agent").start()
    statsd = StatsdListener()
    traefik = AccessLogTraefik(tmp_path / "traefik", backend, routes=[Route("web", ["dd"])],
                               middlewares={"dd": {**DD_CONFIG, "mode": "log"}}, log_format=log_format,
                               no_color=False, binary=traefik_bin, pipe_output=True, access_format=access_format)
    relay_out = tmp_path / "relay.stdout"
    raw = tmp_path / "traefik.raw"
    relay = Relay(tmp_path / "relay", ["--stdin", "--agent-url", agent.url, "--dogstatsd-url", statsd.url,
                                       "--flush-interval", "200ms"], stdin=subprocess.PIPE, stdout_path=relay_out)
    tee = None
    try:
        traefik.start()
        assert traefik.proc is not None and traefik.proc.stdout is not None
        relay.start()
        assert relay.proc is not None
        tee = Tee(traefik.proc.stdout, raw, relay.proc.stdin)
        tee.start()

        forged = forged_texts(9)
        sent: dict[str, str] = {}  # path -> its unique start (/genuine/3, /forged-ua/3, ...)
        port = traefik.port("web")
        for i in range(GENUINE):
            path = f"/genuine/{i}"
            assert request(port, path, {"User-Agent": "client/1"}) == 200
            sent[path] = path
        for i, (text, _) in enumerate(forged):
            for where in ("ua", "referer", "path"):
                path = f"/forged-{where}/{i}"
                headers = {"User-Agent": "client/1"}
                if where == "ua":
                    headers["User-Agent"] = text
                elif where == "referer":
                    headers["Referer"] = text
                else:
                    # The record raw in the request target (spaces are not allowed there).
                    path = f"{path}/" + text.replace(" ", "")
                status = request(port, path, headers)
                assert status == 200, f"{where} {i}: {status}"
                sent[path] = f"/forged-{where}/{i}"

        # Every request's genuine span arrives.
        deadline = time.monotonic() + 60
        while True:
            got = [span_path(s) for s in agent.spans()]
            if all(any(mine(p, start) for p in got) for start in sent.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        # Then Traefik stops: its output ends, the relay reads to the end and exits.
        traefik.stop()
        tee.join(60)
        assert relay.proc.wait(60) == 0, relay.log()[-3000:]

        all_spans = agent.spans()
        by_path: dict[str, list[dict[str, Any]]] = {}
        for s in all_spans:
            by_path.setdefault(span_path(s), []).append(s)
        forged_ids = {sid for _, sid in forged}
        assert not [s for s in all_spans if s.get("span_id") in forged_ids], "a forged record became a span"
        assert not [s for s in all_spans if s.get("service") != "edge"], "a span of another service"
        for start in sent.values():
            n = sum(len(v) for p, v in by_path.items() if mine(p, start))
            assert n == 1, f"{start}: {n} spans; paths: {[p for p in by_path if p.startswith(start)]}"
        probes = [p for p in by_path if p.startswith(READY_PREFIX)]
        assert len(all_spans) == len(sent) + len(probes), (len(all_spans), len(sent), len(probes))

        # The relay's stdout is Traefik's output less exactly the consumed record lines.
        raw_lines = raw.read_bytes().splitlines(keepends=True)
        # (less the relay's own info lines, which share its stdout)
        out_lines = relay.copied().splitlines(keepends=True)
        consumed: list[bytes] = []
        j = 0
        for line in raw_lines:
            if j < len(out_lines) and out_lines[j] == line:
                j += 1
            else:
                consumed.append(line)
        assert j == len(out_lines), f"relay stdout has a line Traefik did not write: {out_lines[j][:300]!r}"
        assert len(consumed) == len(all_spans), (len(consumed), len(all_spans))
        for line in consumed:
            assert b"wasm" in line and b"traefik-datadog" in line, line[:300]

        # Every request's access-log line went through, forged text intact.
        out_text = relay.copied()
        for start in sent.values():
            lines_of = [ln for ln in out_lines if re.search(re.escape(start.encode()) + rb'[/ "]', ln)]
            assert len(lines_of) == 1, f"{start}: {len(lines_of)} access-log lines passed through"
        for text, _ in forged:
            # Header values as each format quotes them: CLF escapes `"` only, JSON the JSON way.
            quoted = text.replace('"', '\\"') if access_format == "common" else json.dumps(text)[1:-1]
            assert quoted.encode() in out_text, f"forged text not passed through: {text[:80]}"
        print(f"\n{log_format}/{access_format}: {len(sent)} requests ({len(sent) - GENUINE} forged), "
              f"{len(all_spans)} spans ({len(probes)} probes), {len(consumed)} lines consumed, "
              f"{len(out_lines)} passed through")
    finally:
        traefik.stop()
        if tee is not None:
            tee.join(10)
        relay.stop()
        agent.stop()
        statsd.close()
