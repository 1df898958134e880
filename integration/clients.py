"""HTTP clients for the end-to-end tests, recording what the record lines must match."""

from __future__ import annotations

import http.client
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import lines


@dataclass
class Sent:
    """One request as sent and answered, with the facts its record must carry."""

    n: int
    method: str
    host_header: str  # Host header as sent (may carry a port)
    path: str  # unique path, no query
    query: str = ""  # query string as sent, without '?'
    status: int = 200  # status the backend is asked to answer
    delay_ms: int = 0
    user_agent: str = ""
    disconnect: bool = False  # client gives up after `client_timeout` seconds
    client_timeout: float = 0.3
    # Filled in by send():
    t_before_ns: int = 0
    t_after_ns: int = 0
    client_port: int = 0
    got_status: int | None = None
    got_body: bytes = b""
    got_headers: dict[str, str] = field(default_factory=dict)

    @property
    def expected_host(self) -> str:
        return self.host_header.rsplit(":", 1)[0] if ":" in self.host_header else self.host_header

    @property
    def expected_status(self) -> int:
        return 499 if self.disconnect else self.status

    def target(self) -> str:
        params = []
        if self.status != 200:
            params.append(f"status={self.status}")
        if self.delay_ms:
            params.append(f"delay_ms={self.delay_ms}")
        if self.query:
            params.append(self.query)
        return self.path + ("?" + "&".join(params) if params else "")


def send(port: int, req: Sent, timeout: float = 15.0) -> Sent:
    """Sends `req` on a fresh connection to 127.0.0.1:port with http.client (exact Host header,
    known client port). For `disconnect`, sends raw bytes and closes after `client_timeout`."""
    if not req.user_agent:
        req.user_agent = f"itest/{req.n}"
    if req.disconnect:
        return _send_and_abandon(port, req)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.connect()
        assert conn.sock is not None
        req.client_port = conn.sock.getsockname()[1]
        headers = {"Host": req.host_header, "User-Agent": req.user_agent, "Connection": "close"}
        body = None
        if req.method in ("POST", "PUT"):
            body = f"payload {req.n}".encode()
            headers["Content-Type"] = "text/plain"
        req.t_before_ns = time.time_ns()
        conn.request(req.method, req.target(), body=body, headers=headers)
        resp = conn.getresponse()
        req.got_body = resp.read()
        req.t_after_ns = time.time_ns()
        req.got_status = resp.status
        req.got_headers = {k: v for k, v in resp.getheaders()}
    finally:
        conn.close()
    return req


def _send_and_abandon(port: int, req: Sent) -> Sent:
    s = socket.create_connection(("127.0.0.1", port))
    try:
        req.client_port = s.getsockname()[1]
        raw = (
            f"{req.method} {req.target()} HTTP/1.1\r\nHost: {req.host_header}\r\n"
            f"User-Agent: {req.user_agent}\r\n\r\n"
        ).encode()
        req.t_before_ns = time.time_ns()
        s.sendall(raw)
        s.settimeout(req.client_timeout)
        try:
            data = s.recv(65536)
            req.got_body = data  # must stay empty: the backend answers after delay_ms
        except socket.timeout:
            pass
    finally:
        s.close()
        req.t_after_ns = time.time_ns()
    return req


def http_get(port: int, target: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request(method, target, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k: v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def record_problems(rec: lines.Record, req: Sent, *, tolerance_ms: int = 250, router: str = "web@file",
                    entrypoint: str = "web", middleware: str = "dd@file",
                    service: str = "edge", env: str = "test", version: str = "1.2.3") -> list[str]:
    """Every way `rec` differs from what the request `req` must have produced."""
    d = rec.data
    p: list[str] = []

    def eq(key: str, want: Any) -> None:
        if key not in d:
            p.append(f"{key} missing (want {want!r})")
        elif d[key] != want or type(d[key]) is not type(want):
            p.append(f"{key}={d[key]!r}, want {want!r}")

    if not rec.text.startswith(lines.RECORD_PREFIX):
        p.append(f"text does not start with {lines.RECORD_PREFIX!r}: {rec.text[:60]!r}")
    if rec.lead:
        p.append(f"text before the marker: {rec.lead!r}")
    eq("RequestHost", req.expected_host)
    eq("RequestMethod", req.method)
    eq("RequestPath", req.path)
    eq("RequestScheme", "http")
    eq("RequestProtocol", "HTTP/1.1")
    eq("DownstreamStatus", req.expected_status)
    eq("status_source", "buffered")
    eq("ClientHost", "127.0.0.1")
    eq("ClientAddr", f"127.0.0.1:{req.client_port}")
    eq("request_User-Agent", req.user_agent)
    eq("dd.service", service)
    eq("dd.env", env)
    eq("dd.version", version)
    eq("dd.name", "traefik.request")
    eq("dd.resource", req.expected_host)
    status = req.expected_status
    eq("dd.error", 1 if 500 <= status <= 599 else 0)
    eq("dd.error_type", "client_error" if 400 <= status <= 499 else "server_error" if 500 <= status <= 599 else "")
    eq("dd.parent_id", "0")
    p.extend(id_problems(d))

    # Timing.
    start_ns, dur = d.get("start_ns"), d.get("Duration")
    if not isinstance(start_ns, int) or not isinstance(dur, int):
        p.append(f"start_ns={start_ns!r} / Duration={dur!r} are not integers")
        return p
    if d.get("StartUTC") != lines.format_start_utc(start_ns):
        p.append(f"StartUTC={d.get('StartUTC')!r} does not match start_ns {start_ns} "
                 f"({lines.format_start_utc(start_ns)!r})")
    slack_ns = 5_000_000
    if not (req.t_before_ns - slack_ns <= start_ns <= req.t_after_ns):
        p.append(f"start_ns {start_ns} outside the client's window [{req.t_before_ns}, {req.t_after_ns}]")
    if req.disconnect:
        lo, hi = int((req.client_timeout - 0.05) * 1e9), 1_500_000_000
        if not lo <= dur < hi:
            p.append(f"Duration {dur} ns for a client gone after {req.client_timeout}s, want [{lo}, {hi})")
    else:
        lo, hi = req.delay_ms * 1_000_000, (req.delay_ms + tolerance_ms) * 1_000_000
        if not lo <= dur < hi:
            p.append(f"Duration {dur} ns outside [{lo}, {hi})")
        if start_ns + dur > req.t_after_ns + slack_ns:
            p.append(f"start_ns+Duration {start_ns + dur} after the client got the response ({req.t_after_ns})")

    # Host fields added by Traefik.
    want_host = {"level": "info", "routerName": router, "entryPointName": entrypoint, "middlewareName": middleware}
    for k, v in want_host.items():
        if rec.host.get(k) != v:
            p.append(f"host field {k}={rec.host.get(k)!r}, want {v!r}")
    return p


def id_problems(d: dict[str, Any]) -> list[str]:
    p: list[str] = []
    for key in ("dd.trace_id", "dd.span_id", "dd.parent_id"):
        v = d.get(key)
        if not (isinstance(v, str) and v.isdigit() and (v == "0" or not v.startswith("0")) and int(v) < 2**64):
            p.append(f"{key}={v!r} is not a decimal u64 string")
    for key in ("dd.trace_id", "dd.span_id"):
        if d.get(key) == "0":
            p.append(f"{key} is 0")
    high = d.get("dd.trace_id_high")
    if not (isinstance(high, str) and len(high) == 16 and all(c in "0123456789abcdef" for c in high)):
        p.append(f"dd.trace_id_high={high!r} is not 16 lowercase hex digits")
    if type(d.get("dd.sampling_priority")) is not int:
        p.append(f"dd.sampling_priority={d.get('dd.sampling_priority')!r} is not an int")
    return p
