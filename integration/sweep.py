"""Shared by the header sweep and fuzz tests: raw HTTP/1.x requests sent the same way to a router
without the plugin (``bare``) and one with it (``web``, mode ``log``) in one Traefik, in front of
the permissive RawBackend, and the plugin's records counted per request.

Every request carries a unique ``/sweep/<id>/`` prefix in its path (``b...`` through the bare
router, ``r...`` through the plugin's); a record is matched to its request by that prefix (a long
path is cut in the record, its start is kept). The guest reads no URI longer than
``URI_READ_MAX``: such a request's record has the path ``...`` (and counts it unread), so those
records are counted together against the requests with such a URI.

No client may ever see wasm internals (Traefik's 500 "wasm error: ... wasm stack trace" when the
guest traps) and Traefik must never die (a fault in its wasm runtime kills the whole process): a
dead Traefik fails the test at once, with its exit status and crash output.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pytest

from harness import Route, Traefik
from raw_backend import RawBackend

ID_RE = re.compile(r"^/sweep/(r\d{6})/")
# A record's fallback line, JSON-escaped once more by Traefik's JSON log, stays far below the
# relay's default --max-line-bytes (65536) even when every kept byte needs an escape.
MAX_RECORD_TEXT = 25 * 1024
# The cut sizes of core/src/request/limits.rs, plus the 3-byte "..." marker they include.
MAX_USER_AGENT = 512
MAX_PATH = 1024
MAX_METHOD = 32
MAX_HOST = 256
MAX_TAG_VALUE = 512
# core/src/request/host.rs READ_MAX: a longer URI is not read; its record's path is UNREAD_PATH.
URI_READ_MAX = 8192
UNREAD_PATH = "..."
LOG_CONFIG = {"service": "edge", "env": "test", "mode": "log", "headerTags": ["x-big:http.big", "user-agent:http.ua"]}
# Traefik's limit on a request head: Go's http.DefaultMaxHeaderBytes (1 MiB) plus the 4096 bytes
# of slack its server reads before refusing with 431 (the sweep finds the exact single-value bound
# by bisection, between 1 << 20 and this).
HEAD_LIMIT = (1 << 20) + 4096
# Enough of an answer to see what it says: the backend's is 3 bytes, Traefik's own a few lines.
MAX_BODY = 1 << 20
STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")
CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*(\d+)[ \t]*\r?$")
CHUNKED = re.compile(rb"(?im)^transfer-encoding:[ \t]*chunked[ \t]*\r?$")
# Optional whitespace around a header value, which Go's server strips.
OWS = b" \t"
# Lines of Go's crash output (a fault in Traefik's wazero, a panic) that say what killed it.
CRASH_LINE = re.compile(r"^(unexpected fault address|fatal error:|panic:|\[signal |runtime: |unexpected return pc"
                        r"|.*split stack overflow|SIG[A-Z]+:)")


@dataclass
class Probe:
    """One raw request. ``host`` None: no Host header at all."""

    method: bytes = b"GET"
    path: bytes = b"/"
    version: bytes = b"HTTP/1.1"
    host: bytes | None = b"sweep.test"
    headers: list[bytes] = field(default_factory=list)

    def target(self, rid: str) -> bytes:
        return b"/sweep/" + rid.encode() + self.path

    def uri_unread(self, rid: str) -> bool:
        """Whether the guest reads no path of this request (its URI is too long)."""
        return len(self.target(rid)) > URI_READ_MAX

    def head(self, rid: str) -> bytes:
        lines = [self.method + b" /sweep/" + rid.encode() + self.path + b" " + self.version]
        if self.host is not None:
            lines.append(b"Host: " + self.host)
        lines.extend(self.headers)
        lines.append(b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n"


@dataclass
class Answer:
    status: int | None  # None: the connection closed without a status line
    head: bytes  # the status line and the header lines
    body: bytes  # chunked encoding undone


def exchange(port: int, data: bytes, timeout: float = 60.0) -> Answer:
    """Sends ``data`` on a fresh connection and reads one answer: until its body is complete (by
    its Content-Length or chunked framing; none after HEAD, 1xx, 204, 304), else until the server
    closes the connection. Not waiting for the close matters: Go keeps an HTTP/1.0 connection
    open when the first Connection value says keep-alive, even beside "Connection: close"."""
    head_request = data.startswith(b"HEAD ")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may answer and close before reading everything
        buf = bytearray()
        try:
            while len(buf) < MAX_BODY:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if complete(bytes(buf), head_request):
                    break
        except OSError:
            pass
    raw = bytes(buf)
    m = STATUS_LINE.match(raw)
    head, sep, _ = raw.partition(b"\r\n\r\n")
    return Answer(int(m.group(1)) if m else None, head if sep else raw, response_body(raw))


def send_raw(port: int, data: bytes, timeout: float = 60.0) -> tuple[int | None, bytes]:
    """Sends ``data`` on a fresh connection: the response status (None if the connection closed
    without a status line) and body."""
    a = exchange(port, data, timeout)
    return a.status, a.body


def complete(raw: bytes, head_request: bool) -> bool:
    """Whether ``raw`` holds a whole response (False: read on, until the server closes)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    m = STATUS_LINE.match(raw)
    if not sep or not m:
        return False
    status = int(m.group(1))
    if head_request or status < 200 or status in (204, 304):
        return True
    if CHUNKED.search(head):
        return dechunk(body)[1]
    lengths = CONTENT_LENGTH.findall(head)
    return len(lengths) == 1 and len(body) >= int(lengths[0])


def response_body(raw: bytes) -> bytes:
    """The body of a raw HTTP/1.x response: after the head, de-chunked when the head says so (a
    malformed chunked body is returned as received)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return b""
    return dechunk(body)[0] if CHUNKED.search(head) else body


def dechunk(body: bytes) -> tuple[bytes, bool]:
    """A chunked body decoded as far as it goes, and whether its last chunk and the end of its
    trailers arrived (a malformed one: returned as is, complete)."""
    out = bytearray()
    rest = body
    while True:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            return bytes(out), False
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            return body, True
        if size == 0:
            return bytes(out), rest.startswith(b"\r\n") or b"\r\n\r\n" in rest
        if len(rest) < size + 2:
            return bytes(out) + rest[:size], False
        out += rest[:size]
        rest = rest[size + 2:]


def shows_wasm_internals(body: bytes) -> bool:
    """Traefik's answer to a request whose guest trapped: the 500 whose body is wazero's error and
    the guest's stack. No client may ever see that."""
    return body.startswith(b"wasm error") or b"wasm stack trace" in body


def exit_report(t: Traefik) -> str | None:
    """None while Traefik runs; once it has exited: its exit status, what its crash output says
    (the first lines of a Go fault or panic) and the end of its output."""
    if t.proc is None or t.proc.poll() is None:
        return None
    rc = t.proc.returncode
    if rc >= 0:
        how = f"exit code {rc}"
    else:
        how = f"signal {signal.Signals(-rc).name}" if -rc in signal.valid_signals() else f"signal {-rc}"
    out = t.log_path.read_text(errors="replace").splitlines() if t.log_path.exists() else []
    first = next((i for i, line in enumerate(out) if CRASH_LINE.match(line)), None)
    crash = "\n".join(line[:300] for line in out[first:first + 40]) if first is not None else "(no crash lines)"
    return f"traefik died ({how}); its crash output:\n{crash}\n--- its last lines ---\n{t.output_tail(15)}"


def assert_alive(t: Traefik, doing: Callable[[], str] | None = None) -> None:
    """Fails the test if Traefik has exited; ``doing`` says what the test was doing (called only
    then)."""
    report = exit_report(t)
    if report is not None:
        pytest.fail(f"{report}\n(while {doing()})" if doing else report, pytrace=False)


class Sweep:
    """Sends probes to both routers and remembers, per request id, both statuses and whether
    the bare request reached the backend (then the plugin's must be recorded exactly once).
    Traefik found dead fails the test at once; a plugin-route answer showing wasm internals is
    reported by ``mismatches``."""

    def __init__(self, traefik: Traefik, backend: RawBackend) -> None:
        self.t = traefik
        self.backend = backend
        self.n = 0
        self.sent: dict[str, tuple[Probe, int | None, int | None, bool]] = {}
        # Request id -> the plugin route's answer body, for the answers that show wasm internals.
        self.wasm_errors: dict[str, bytes] = {}

    def next_id(self) -> str:
        self.n += 1
        return f"r{self.n:06d}"

    def send(self, route: str, probe: Probe, rid: str) -> tuple[int | None, bytes]:
        """``probe`` through ``route``; fails the test if Traefik is (or was found) dead."""
        def doing() -> str:
            return f"sending {rid}: {describe(probe)}"

        try:
            answer = send_raw(self.t.port(route), probe.head(rid))
        except OSError:
            assert_alive(self.t, doing)
            raise
        assert_alive(self.t, doing)
        return answer

    def bare(self, probe: Probe) -> int | None:
        """Status of ``probe`` through the bare router only (for finding Traefik's limits)."""
        return self.send("bare", probe, "b" + self.next_id()[1:])[0]

    def both(self, probe: Probe) -> tuple[int | None, int | None]:
        rid = self.next_id()
        bare_id = "b" + rid[1:]
        bare, _ = self.send("bare", probe, bare_id)
        # The backend notes a target before answering it.
        reached = self.backend.reached(f"/sweep/{bare_id}/".encode())
        web, body = self.send("web", probe, rid)
        self.sent[rid] = (probe, bare, web, reached)
        if shows_wasm_internals(body):
            self.wasm_errors[rid] = body
        return bare, web

    def records_by_id(self) -> dict[str, list]:
        out: dict[str, list] = {}
        for r in self.t.records():
            m = ID_RE.match(str(r.data.get("RequestPath", "")))
            if m:
                out.setdefault(m.group(1), []).append(r)
        return out

    def unread_records(self) -> int:
        """Records whose path the guest did not read (the requests' URIs were too long)."""
        return sum(1 for r in self.t.records() if r.data.get("RequestPath") == UNREAD_PATH)

    def expected(self) -> tuple[set[str], int]:
        """The requests that reached the backend and must each have a record found by id, and
        how many more reached it with a URI too long to read (records with the path UNREAD_PATH)."""
        by_id, unread = set(), 0
        for rid, (probe, _, _, reached) in self.sent.items():
            if reached and probe.uri_unread(rid):
                unread += 1
            elif reached:
                by_id.add(rid)
        return by_id, unread

    def wait_records(self, timeout: float = 30.0, settle: float = 1.0) -> dict[str, list]:
        """Waits until every request that reached the backend has a record (or ``timeout``),
        then ``settle`` more seconds so that duplicates would show."""
        want, unread = self.expected()
        deadline = time.monotonic() + timeout
        while (not want <= self.records_by_id().keys() or self.unread_records() < unread) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(settle)
        return self.records_by_id()

    def mismatches(self) -> list[str]:
        """Every request whose statuses differ, whose plugin-route answer shows wasm internals,
        or whose record count is not exactly one when it reached the backend (zero when it did
        not)."""
        recs = self.wait_records()
        assert_alive(self.t, lambda: "waiting for the records")
        bad = []
        _, unread = self.expected()
        if self.unread_records() != unread:
            bad.append(f"{self.unread_records()} records with the path {UNREAD_PATH!r}, for {unread} "
                       f"requests with a URI over {URI_READ_MAX} bytes that reached the backend")
        for rid, (probe, bare, web, reached) in self.sent.items():
            n = len(recs.get(rid, []))
            want = 1 if reached and not probe.uri_unread(rid) else 0
            trap = self.wasm_errors.get(rid)
            if bare != web or n != want or trap is not None:
                bad.append(
                    f"{rid}: {probe.method[:20]!r} {probe.version!r} {len(probe.headers)} headers, "
                    f"{sum(map(len, probe.headers))} header bytes: bare {bare}, plugin {web}, "
                    f"{n} records (want {want})"
                    + (f", the plugin route answered {trap[:300]!r}" if trap is not None else "")
                )
        return bad


@contextlib.contextmanager
def started(workdir: Path, config: dict | None = None,
            mounts: list[str] | None = None) -> Iterator[tuple[Traefik, RawBackend]]:
    """One Traefik with the ``bare`` and ``web`` routers in front of a RawBackend; the plugin
    configured with ``config`` (default LOG_CONFIG)."""
    backend = RawBackend()
    t = Traefik(workdir, backend, routes=[Route("web", ["dd"]), Route("bare")],
                middlewares={"dd": dict(config or LOG_CONFIG)}, mounts=mounts)
    try:
        t.start()
        yield t, backend
    finally:
        t.stop()
        backend.stop()
        print(f"--- traefik output ({t.log_path}), last lines ---\n{t.output_tail(15)}")


def describe(p: Probe) -> str:
    """A probe in one line: method, version, sizes, and its largest headers."""
    def name_and_size(line: bytes) -> str:
        name, _, value = line.partition(b":")
        more = "..." if len(name) > 40 else ""
        return f"{name[:40]!r}{more}={len(value.strip(OWS))}"
    names = [h.partition(b":")[0].lower() for h in p.headers]
    largest_lines = sorted(p.headers, key=len, reverse=True)[:4]
    head = len(p.head("r000000"))
    return (f"{p.method[:16]!r}{'...' if len(p.method) > 16 else ''}({len(p.method)} bytes) "
            f"{p.version.decode()}, host {'absent' if p.host is None else f'{len(p.host)} bytes'}, "
            f"path+query {len(p.path)} bytes, {len(p.headers)} headers ({len(names) - len(set(names))} "
            f"repeated names), head {head} bytes; largest: {', '.join(map(name_and_size, largest_lines)) or '-'}")


def distinct_headers(count: int, value: bytes = b"v") -> list[bytes]:
    return [b"X-H-%d: %s" % (i, value) for i in range(count)]


def largest(accepts, lo: int, hi: int) -> int:
    """The largest n in [lo, hi] with accepts(n), given accepts(lo) and that acceptance is
    monotone."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if accepts(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def statuses(values: Iterable[int | None]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return dict(sorted(out.items()))


def check_records(s: "Sweep") -> list[str]:
    """Mismatches (statuses, wasm internals shown, record counts) plus records over the
    documented sizes."""
    bad = s.mismatches()
    for rid, recs in s.records_by_id().items():
        for r in recs:
            d = r.data
            over = [
                f"{k}={len(str(d.get(k, '')).encode())}"
                for k, cap in (
                    ("request_User-Agent", MAX_USER_AGENT),
                    ("RequestPath", MAX_PATH),
                    ("RequestMethod", MAX_METHOD),
                    ("RequestHost", MAX_HOST),
                )
                if len(str(d.get(k, "")).encode()) > cap
            ]
            over += [f"tag {k}={len(v.encode())}" for k, v in d.get("dd.header_tags", {}).items()
                     if len(v.encode()) > MAX_TAG_VALUE]
            if over or len(r.text) > MAX_RECORD_TEXT:
                bad.append(f"{rid}: record over its bounds: {over}, text {len(r.text)} bytes")
    return bad
