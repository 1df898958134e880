"""Shared by the header sweep and fuzz tests: raw HTTP/1.x requests sent the same way to a router
without the plugin (``bare``) and one with it (``web``, mode ``log``) in one Traefik, in front of
the permissive RawBackend, and the plugin's records counted per request.

Every request carries a unique ``/sweep/<id>/`` prefix in its path (``b...`` through the bare
router, ``r...`` through the plugin's); a record is matched to its request by that prefix (a long
path is cut in the record, its start is kept).
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from harness import Route, Traefik
from raw_backend import RawBackend

ID_RE = re.compile(r"^/sweep/(r\d{6})/")
# A record's fallback line, JSON-escaped once more by Traefik's JSON log, stays far below the
# relay's default --max-line-bytes (65536) even when every kept byte needs an escape.
MAX_RECORD_TEXT = 25 * 1024
# The cut sizes of core/src/limits.rs, plus the 3-byte "..." marker they include.
MAX_USER_AGENT = 512
MAX_PATH = 1024
MAX_METHOD = 32
MAX_HOST = 256
MAX_TAG_VALUE = 512
LOG_CONFIG = {"service": "edge", "env": "test", "mode": "log", "headerTags": ["x-big:http.big", "user-agent:http.ua"]}


@dataclass
class Probe:
    """One raw request. ``host`` None: no Host header at all."""

    method: bytes = b"GET"
    path: bytes = b"/"
    version: bytes = b"HTTP/1.1"
    host: bytes | None = b"sweep.test"
    headers: list[bytes] = field(default_factory=list)

    def head(self, rid: str) -> bytes:
        lines = [self.method + b" /sweep/" + rid.encode() + self.path + b" " + self.version]
        if self.host is not None:
            lines.append(b"Host: " + self.host)
        lines.extend(self.headers)
        lines.append(b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n"


def send_raw(port: int, data: bytes, timeout: float = 60.0) -> int | None:
    """Sends ``data`` on a fresh connection; the response status, or None if the connection
    closed without a status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may answer and close before reading everything
        buf = b""
        try:
            while b"\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            while s.recv(65536):
                pass
        except OSError:
            pass
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", buf)
    return int(m.group(1)) if m else None


class Sweep:
    """Sends probes to both routers and remembers, per request id, both statuses and whether
    the bare request reached the backend (then the plugin's must be recorded exactly once)."""

    def __init__(self, traefik: Traefik, backend: RawBackend) -> None:
        self.t = traefik
        self.backend = backend
        self.n = 0
        self.sent: dict[str, tuple[Probe, int | None, int | None, bool]] = {}

    def next_id(self) -> str:
        self.n += 1
        return f"r{self.n:06d}"

    def bare(self, probe: Probe) -> int | None:
        """Status of ``probe`` through the bare router only (for finding Traefik's limits)."""
        return send_raw(self.t.port("bare"), probe.head("b" + self.next_id()[1:]))

    def both(self, probe: Probe) -> tuple[int | None, int | None]:
        rid = self.next_id()
        bare_id = "b" + rid[1:]
        bare = send_raw(self.t.port("bare"), probe.head(bare_id))
        # The backend notes a target before answering it.
        reached = self.backend.reached(f"/sweep/{bare_id}/".encode())
        web = send_raw(self.t.port("web"), probe.head(rid))
        self.sent[rid] = (probe, bare, web, reached)
        return bare, web

    def records_by_id(self) -> dict[str, list]:
        out: dict[str, list] = {}
        for r in self.t.records():
            m = ID_RE.match(str(r.data.get("RequestPath", "")))
            if m:
                out.setdefault(m.group(1), []).append(r)
        return out

    def wait_records(self, timeout: float = 30.0, settle: float = 1.0) -> dict[str, list]:
        """Waits until every request that reached the backend has a record (or ``timeout``),
        then ``settle`` more seconds so that duplicates would show."""
        want = {rid for rid, (_, _, _, reached) in self.sent.items() if reached}
        deadline = time.monotonic() + timeout
        while not want <= self.records_by_id().keys() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(settle)
        return self.records_by_id()

    def mismatches(self) -> list[str]:
        """Every request whose statuses differ, or whose record count is not exactly one when
        it reached the backend (zero when it did not)."""
        recs = self.wait_records()
        bad = []
        for rid, (probe, bare, web, reached) in self.sent.items():
            n = len(recs.get(rid, []))
            want = 1 if reached else 0
            if bare != web or n != want:
                bad.append(
                    f"{rid}: {probe.method[:20]!r} {probe.version!r} {len(probe.headers)} headers, "
                    f"{sum(map(len, probe.headers))} header bytes: bare {bare}, plugin {web}, "
                    f"{n} records (want {want})"
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
    """Mismatches plus records over the documented sizes."""
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
