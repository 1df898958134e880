"""Deployed topology (Traefik at its default log level): with no relay, the spool fills up to its
bound (`spoolMaxBytes`, here about 20 frames) and every record after that goes out as a fallback
line at ERROR level, so it shows at Traefik's default level. Once the relay starts it drains the
spool. Every request is exactly one span or one ERROR line, never both, never neither.
"""

from __future__ import annotations

import struct
import time

import load
from deployed import SETTLE_S, spool_files
from pipeline import FIFO_NAME

N = 100
LIMIT = 4_000  # bytes: a /load/ frame is about 190 bytes


def frames(data: bytes) -> int:
    """Whole frames in a spool file: `TD`, version, flags, body length (u16 LE), body."""
    n = off = 0
    while off + 6 <= len(data):
        assert data[off:off + 2] == b"TD", off
        off += 6 + struct.unpack_from("<H", data, off + 4)[0]
        n += 1
    assert off == len(data)
    return n


def test_a_full_spool_turns_records_into_error_lines(deployed) -> None:
    p = deployed(relay_first=False, plugin={"spoolMaxBytes": LIMIT})
    relay, traefik = p.relay, p.traefik
    planned = load.plan(N)
    result = load.run(traefik.port("web"), planned, 4)
    assert result.errors == [] and result.wrong == []
    spool = p.fifo.parent / (FIFO_NAME + ".spool")
    data = spool.read_bytes()
    size, spooled = len(data), frames(data)
    assert LIMIT - 300 < size <= LIMIT, size

    want = {r.path for r in planned}
    lines = {str(r.data["RequestPath"]): r for r in traefik.wait_records([], timeout=0, settle=1.0)}
    assert all(r.host.get("level") == "error" for r in lines.values()), list(lines.values())[:2]
    relay.start()
    spans: dict = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        spans = p.spans("/load/")
        if want <= spans.keys() | lines.keys() and not spool_files(p):
            break
        time.sleep(0.2)
    time.sleep(SETTLE_S + 1)
    spans = p.spans("/load/")
    print(f"\nspool held {size} bytes, {spooled} frames: {len(spans)} spans, {len(lines)} ERROR lines")
    assert spans.keys() & lines.keys() == set()
    assert spans.keys() | lines.keys() == want
    assert [k for k, v in spans.items() if len(v) > 1] == []
    # The spool also held the readiness probes Traefik's start sent through the middleware.
    ready = sum(len(v) for v in p.spans("/__ready/").values())
    assert len(spans) + ready == spooled and len(lines) == N - len(spans)
    assert spool_files(p) == []
