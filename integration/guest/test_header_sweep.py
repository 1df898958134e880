"""No request is harmed by the plugin, whatever its head: header counts and value sizes up to
Traefik's own limits (found here by bisection on the bare router), non-UTF-8 bytes, odd and
huge methods, empty or missing Host, HTTP/1.0. Each request goes through a bare router and a
plugin router of the same Traefik: the statuses must be identical, and the plugin must record
every request that reached the backend exactly once, cut to the documented sizes (README,
"Limits").
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Iterator

import msgpack
import pytest

from fifo_frames import FifoFrames
from sweep import (LOG_CONFIG, UNREAD_PATH, Probe, Sweep, check_records, distinct_headers, largest, started,
                   statuses)

@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    with started(tmp_path_factory.mktemp("sweep")) as (t, backend):
        yield Sweep(t, backend)


def test_traefik_limits_and_sweep(sweep: Sweep) -> None:
    s = sweep
    # Traefik's limits, on the bare router: the largest single header value and the most
    # distinct headers it answers 200 for (Go's MaxHeaderBytes 1 MiB + its 4096-byte slack).
    max_value = largest(lambda n: s.bare(Probe(headers=[b"X-Big: " + b"a" * n])) == 200, 0, 2 << 20)
    max_count = largest(lambda n: s.bare(Probe(headers=distinct_headers(n))) == 200, 0, 400_000)
    print(f"\nTraefik accepts one header value up to {max_value} bytes, up to {max_count} headers")
    assert 1 << 20 <= max_value < (1 << 20) + 4096
    assert max_count > 50_000

    ua_limit = max_value - (len(b"User-Agent") - len(b"X-Big"))
    counts = [0, 1, 10, 50, 80, 99, 100, 101, 128, 129, 500, 1_000, 5_000, 20_000,
              max_count - 1, max_count, max_count + 1]
    for n in counts:
        s.both(Probe(headers=distinct_headers(n)))
    sizes = [0, 1, 255, 256, 511, 512, 513, 1023, 1024, 1025, 2035, 2036, 2047, 2048, 2049,
             4095, 4096, 4097, 65_536, ua_limit - 1, ua_limit, ua_limit + 1]
    for n in sizes:
        s.both(Probe(headers=[b"User-Agent: " + b"u" * n]))
        s.both(Probe(headers=[b"X-Big: " + b"b" * n]))
    # One name, many values: the host joins them.
    s.both(Probe(headers=[b"X-Same: v"] * 10_000))
    s.both(Probe(headers=[b"User-Agent: a"] * 3_000))
    # Non-UTF-8 bytes (obs-text) wherever Traefik lets them through.
    s.both(Probe(headers=[b"User-Agent: \xff\xfe\x80 \xc3\x28 ok"]))
    s.both(Probe(headers=[b"User-Agent: " + bytes(range(0x80, 0x100)) * 20]))
    s.both(Probe(headers=[b"X-Big: \xe2\x82"]))
    s.both(Probe(path=b"/\xff\xfe/raw"))
    s.both(Probe(path=b"/%ff%fe/escaped?q=%00"))
    s.both(Probe(host=b"\xc3\x28.test"))
    # Long paths, up to what fits the request head.
    for n in [1_000, 1_024, 2_048, 10_000, 65_536, 500_000]:
        s.both(Probe(path=b"/" + b"p" * n))
    # Odd methods.
    for m in [b"PURGE", b"FOO_BAR", b"get", b"M-SEARCH", b"M" * 31, b"M" * 32, b"M" * 33,
              b"M" * 10_000, b"M" * 500_000, b"GET\x7f"]:
        s.both(Probe(method=m))
    # Host: empty, missing (HTTP/1.0 allows it, HTTP/1.1 does not), long, with a port, IPv6.
    s.both(Probe(host=b""))
    s.both(Probe(host=None))
    s.both(Probe(host=None, version=b"HTTP/1.0"))
    s.both(Probe(host=b"sweep.test", version=b"HTTP/1.0"))
    s.both(Probe(host=b"", version=b"HTTP/1.0", headers=distinct_headers(1_000)))
    s.both(Probe(host=b"h" * 300 + b".test"))
    s.both(Probe(host=b"h" * 100_000))
    s.both(Probe(host=b"Sweep.Test:8080"))
    s.both(Probe(host=b"[::1]:8080"))

    bad = check_records(s)
    reached = sum(1 for *_, r in s.sent.values() if r)
    print(f"sweep: {len(s.sent)} requests, {reached} reached the backend, bare statuses "
          f"{statuses(b for _, b, _, _ in s.sent.values())}")
    assert not bad, "\n".join(bad[:20])
    assert reached >= len(s.sent) - 20


def test_no_trap_after_the_sweep(sweep: Sweep) -> None:
    """Instances that served the extremes above still serve ordinary requests."""
    for _ in range(50):
        s_bare, s_web = sweep.both(Probe(headers=[b"User-Agent: after"]))
        assert (s_bare, s_web) == (200, 200)
    assert not check_records(sweep)


def test_extremes_through_the_pipe_fit_one_frame_each(tmp_path: Path) -> None:
    """In pipe mode the same extremes each give exactly one frame of at most 4,096 bytes (one
    atomic FIFO write) and no fallback line: no record is too large for the pipe."""
    run = tmp_path / "run"
    run.mkdir()
    fifo = FifoFrames(run / "dd.fifo")
    conf = {**LOG_CONFIG, "mode": "pipe", "pipePath": "/run/dd/dd.fifo"}
    try:
        with started(tmp_path / "traefik", conf, mounts=[f"{run}:/run/dd"]) as (t, backend):
            s = Sweep(t, backend)
            mib = 1_040_000
            for p in [
                Probe(headers=[b"User-Agent: " + b"u" * mib]),
                Probe(headers=[b"X-Big: " + b"\xff" * mib]),
                Probe(headers=[b"User-Agent: " + "é".encode() * 250_000, b"X-Big: " + "𝄞".encode() * 125_000]),
                Probe(headers=distinct_headers(60_000)),
                Probe(headers=[b"x-datadog-tags: _dd.p.a=" + b"b" * 500_000, b"tracestate: dd=" + b"c" * 500_000]),
                Probe(method=b"M" * mib),
                Probe(path=b"/" + b"p" * mib),
                Probe(host=b"h" * mib),
                Probe(host=b"", version=b"HTTP/1.0", headers=[b"X-Big: " + b"\x80" * 100_000]),
            ]:
                s.both(p)
            reached = sorted(rid for rid, (*_, r) in s.sent.items() if r)
            fifo.wait(len(reached), timeout=30)
            time.sleep(1)
            frames = fifo.by_id(re.compile(rb"/sweep/(r\d{6})/"))
            by_id, unread = s.expected()
            assert [(b, w) for _, b, w, _ in s.sent.values()] == [(200, 200)] * len(s.sent)
            assert s.wasm_errors == {}
            assert {rid: len(frames.get(rid, [])) for rid in reached} == {rid: int(rid in by_id) for rid in reached}
            # The 1 MiB path is not read: its frame's path (the record's fifth field) is the marker.
            unread_frames = [f for f in fifo.frames if msgpack.unpackb(f[6:])[4] == UNREAD_PATH]
            assert (unread, len(unread_frames)) == (1, 1)
            sizes = [len(f) for fs in frames.values() for f in fs]
            print(f"\npipe: {len(reached)} extreme requests, frames of {min(sizes)}..{max(sizes)} bytes")
            assert max(sizes) <= 4096
            assert fifo.garbage == 0
            assert not s.records_by_id(), "a record fell back to a log line"
    finally:
        fifo.stop()
