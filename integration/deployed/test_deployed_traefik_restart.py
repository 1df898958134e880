"""Deployed topology (Traefik at its default log level, relay on the FIFO only): Traefik is
stopped (SIGTERM, graceful) and started again while a paced load of 3,000 requests at 150/s runs.

Requests sent while Traefik is down fail at the client, and the restarted Traefik answers 404
itself until its routers are built (no middleware ran: no span). Every request that got the
backend's response is exactly one span, a request that failed mid-way is at most one, and none goes
to Traefik's log.
"""

from __future__ import annotations

import time

import load
from deployed import assert_exact, wait_exact

N = 3_000
RATE = 150.0
CONCURRENCY = 16
STOP_AT = 5.0


def test_traefik_restart_under_load_keeps_one_span_per_answered_request(deployed) -> None:
    p = deployed()
    planned = load.plan(N)
    bg = load.Background(p.traefik.port("web"), planned, CONCURRENCY, rate=RATE)
    time.sleep(STOP_AT)
    t0 = time.monotonic()
    p.traefik.stop()
    stopped_in = time.monotonic() - t0
    p.traefik.start()
    down_for = time.monotonic() - t0
    result = bg.join()
    # Traefik's own 404 before its routers exist: the request never reached a router.
    unrouted = {w.split(":", 1)[0] for w in result.wrong if w.endswith(" 404 b'404 page not found\\n'")}
    assert len(unrouted) == len(result.wrong), result.wrong[:5]
    failed = {e.split(":", 1)[0] for e in result.errors}
    answered = {r.path for r in planned} - failed - unrouted

    spans = wait_exact(p, answered)
    rc = p.relay.stop()
    counters = p.relay.counters()
    print(f"\nspans={len(spans)}; answered {len(answered)} of {N}, failed at the client {len(failed)}, "
          f"404 before the routers {len(unrouted)}; "
          f"traefik stopped in {stopped_in:.1f}s, back after {down_for:.1f}s; relay {counters}")
    assert failed or unrouted, "Traefik's restart went unnoticed: the test proves nothing"
    assert_exact(p, spans, answered, failed)
    assert spans.keys() & unrouted == set()
    assert rc == 0
    assert (counters["spans_dropped"], counters["pipe.queue_full"], counters["pipe.malformed"]) == (0, 0, 0)
    assert p.agent.check_failures() == ""
