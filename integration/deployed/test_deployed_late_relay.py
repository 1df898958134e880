"""Deployed topology (Traefik at its default log level, relay on the FIFO only): Traefik starts
first and serves 3,000 requests at 150/s; the relay starts 5 s after Traefik, when there is no FIFO
yet.

Until the relay creates the FIFO the plugin appends each frame to the spool (it creates the spool
file in the mounted directory); the relay drains it on start. Every request becomes exactly one
span, none goes to Traefik's log.
"""

from __future__ import annotations

import time

import load
from deployed import assert_exact, handed_on_from_spool, wait_exact

N = 3_000
RATE = 150.0
CONCURRENCY = 16
RELAY_AFTER = 5.0  # s after Traefik is ready


def test_relay_started_after_traefik_gets_every_record(deployed) -> None:
    p = deployed(relay_first=False)
    ready_at = time.monotonic()
    assert not p.fifo.exists()
    planned = load.plan(N)
    bg = load.Background(p.traefik.port("web"), planned, CONCURRENCY, rate=RATE)
    time.sleep(max(0.0, RELAY_AFTER - (time.monotonic() - ready_at)))
    p.relay.start()
    result = bg.join()
    assert result.errors == [], result.errors[:5]
    assert result.wrong == [], result.wrong[:5]

    spans = wait_exact(p, {r.path for r in planned})
    rc = p.relay.stop()
    counters = p.relay.counters()
    spooled = handed_on_from_spool(p)
    print(f"\nspans={len(spans)} of {N}; from the spool {spooled}; relay {counters}")
    assert_exact(p, spans, {r.path for r in planned})
    assert spooled >= (RELAY_AFTER - 1) * RATE, spooled
    assert rc == 0
    assert (counters["spans_dropped"], counters["pipe.queue_full"], counters["pipe.malformed"]) == (0, 0, 0)
    assert p.agent.check_failures() == ""
