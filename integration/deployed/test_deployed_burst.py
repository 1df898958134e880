"""Deployed topology (Traefik at its default log level, pipe mode, relay on the FIFO only): a burst
the relay cannot follow, and it holds back instead of dropping.

Traefik serves an unpaced load. Midway the relay is stopped (SIGSTOP) for at least 2 s and until the
pipe is full and the plugin's writes have put 64 KiB (~340 records) into the spool, then it goes on
(SIGCONT). It runs with a
queue of 64 records, as a relay on a slow or throttled core would be: the first read of the full pipe
already holds more records than the queue takes, so from then on it stays behind the FIFO for as long
as the backlog lasts. A record read from the FIFO is never dropped for lack of room: the relay stops
reading until the pipeline makes room, the pipe stays full, the plugin goes on spooling, and the relay
drains the spool once it catches up.

Every answered request is exactly one span; none is dropped (`pipe.queue_full` 0) or goes to Traefik's
log; the relay counted the time it held back (and reported the same total as telemetry), and its
spool gauge ends at 0.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import load
from deployed import SPOOL_NAME, assert_exact, handed_on_from_spool, wait_exact

N = 30_000
CONCURRENCY = 32
QUEUE = 64
STOP_AT_LEAST = 2.0  # s
SPILL = 64 * 1024  # bytes in the spool before the relay goes on
STARTED_AFTER = 1.0  # s of load before the relay stops


def spool_size(spool: Path) -> int:
    try:
        return spool.stat().st_size
    except FileNotFoundError:
        return 0


def test_a_burst_the_relay_cannot_follow_loses_nothing(deployed) -> None:
    p = deployed(relay_extra=("--queue-size", str(QUEUE)))
    relay, spool = p.relay, p.fifo.parent / SPOOL_NAME
    planned = load.plan(N)
    bg = load.Background(p.traefik.port("web"), planned, CONCURRENCY)
    time.sleep(STARTED_AFTER)
    assert relay.proc is not None
    relay.proc.send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        # At least 2 s, and until the full pipe pushed SPILL bytes of frames into the spool
        # (bounded: should the load end first, the assertion below says so).
        while time.monotonic() - stopped_at < STOP_AT_LEAST or spool_size(spool) < SPILL:
            if time.monotonic() - stopped_at > 60:
                break
            time.sleep(0.05)
        spool_at_resume = spool_size(spool)
    finally:
        relay.proc.send_signal(signal.SIGCONT)
    stopped_for = time.monotonic() - stopped_at
    result = bg.join()
    assert result.errors == [], result.errors[:5]
    assert result.wrong == [], result.wrong[:5]

    spans = wait_exact(p, {r.path for r in planned}, timeout=120)
    rc = relay.stop()
    counters = relay.counters()
    spooled = handed_on_from_spool(p)
    print(f"\n{N} requests at c={CONCURRENCY}, {N / (result.ended - result.started):.0f} req/s; relay stopped "
          f"{stopped_for:.1f}s, spool {spool_at_resume} bytes when it went on; spans {len(spans)}; "
          f"from the spool {spooled}; held back {counters.get('pipe.held_back_us', 0) / 1e6:.2f}s; "
          f"relay {counters}")
    assert spool_at_resume >= SPILL, "the pipe never filled while the relay was stopped: the test proves nothing"
    assert_exact(p, spans, {r.path for r in planned})
    assert spooled > 0
    assert rc == 0
    assert (counters["spans_dropped"], counters["pipe.queue_full"], counters["pipe.malformed"]) == (0, 0, 0)
    assert counters["spans_sent"] == counters["pipe.received"]
    # It held back: a full pipe's first read alone is more than the queue takes.
    assert counters["pipe.held_back_us"] > 0
    assert p.statsd.total("traefik_datadog.relay.held_back_us", input="pipe") == counters["pipe.held_back_us"]
    assert counters["spool_bytes"] == 0
    assert p.agent.check_failures() == ""
