"""Deployed topology (Traefik at its default log level, relay on the FIFO only): the relay is
stopped (SIGTERM) for 10 s and started again while Traefik serves 3,000 requests at 150/s.

While the relay is away the plugin appends each frame to the spool beside the FIFO; the restarted
relay drains it. Every request becomes exactly one span, none goes to Traefik's log, and the spool
is gone at the end.
"""

from __future__ import annotations

import time

import load
from deployed import assert_exact, handed_on_from_spool, wait_exact

N = 3_000
RATE = 150.0  # requests/s: 20 s of load
CONCURRENCY = 16
STOP_AT = 3.0  # s into the load
DOWN_FOR = 10.0


def test_relay_stopped_ten_seconds_loses_and_duplicates_nothing(deployed) -> None:
    p = deployed()
    planned = load.plan(N)
    bg = load.Background(p.traefik.port("web"), planned, CONCURRENCY, rate=RATE)
    time.sleep(STOP_AT)
    t0 = time.monotonic()
    rc1 = p.relay.stop()
    first = p.relay.counters()
    time.sleep(max(0.0, DOWN_FOR - (time.monotonic() - t0)))
    p.relay.start()
    result = bg.join()
    assert result.errors == [], result.errors[:5]
    assert result.wrong == [], result.wrong[:5]

    spans = wait_exact(p, {r.path for r in planned})
    rc2 = p.relay.stop()
    second = p.relay.counters()
    spooled = handed_on_from_spool(p)
    print(f"\nspans={len(spans)} of {N}; from the spool {spooled}; relay runs sent "
          f"{first.get('spans_sent')} + {second.get('spans_sent')}")
    assert_exact(p, spans, {r.path for r in planned})
    # About DOWN_FOR * RATE requests came while the relay was away: all through the spool.
    assert spooled >= (DOWN_FOR - 1) * RATE, spooled
    assert rc1 == 0 and rc2 == 0
    for c in (first, second):
        assert (c["spans_dropped"], c["pipe.queue_full"], c["pipe.malformed"]) == (0, 0, 0), c
        assert c["spans_sent"] == c["pipe.received"], c
    assert p.agent.check_failures() == ""
