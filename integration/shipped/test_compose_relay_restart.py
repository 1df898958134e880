"""deploy/compose/ in Docker: the relay container restarted in the middle of a paced load loses and
duplicates nothing.

While the relay is stopped (SIGTERM) nobody reads the FIFO, so the plugin appends each record to
the spool beside it in the shared volume; the restarted relay drains it. The test waits until the
spool holds records before it starts the relay again, so the spool path is always exercised, then
checks every request exactly once (spans, DogStatsD hits), the spool gone, and both relay runs'
final counters clean.
"""

from __future__ import annotations

import time

import load
from containers import PORT, assert_exact, handed_on_from_spool, relay_counters, stack, whoami_answer

N = 3_000
RATE = 150.0  # requests/s: 20 s of load
CONCURRENCY = 16
STOP_AT = 4.0  # s into the load
DOWN_AFTER_SPOOL = 3.0  # s the relay stays away once the spool has records


def test_relay_restarted_under_load_loses_nothing(tmp_path) -> None:
    with stack(tmp_path, "tdp-relay-restart") as s:
        planned = load.plan(N)
        bg = load.Background(PORT, planned, CONCURRENCY, rate=RATE, check=whoami_answer)
        time.sleep(STOP_AT)
        s.compose.run("stop", "relay")
        spool = s.compose.volume_dir("ddpipe") / "traefik-datadog.fifo.spool"
        deadline = time.monotonic() + 30
        while not (spool.exists() and spool.stat().st_size > 0):
            assert time.monotonic() < deadline, "no record reached the spool while the relay was stopped"
            time.sleep(0.1)
        time.sleep(DOWN_AFTER_SPOOL)
        s.compose.run("start", "relay")
        result = bg.join()
        spans = s.wait_spans({r.path for r in planned})
        s.compose.run("stop", "relay")
        log = s.compose.logs("relay")
        spooled = handed_on_from_spool(log)
        first, second = relay_counters(log)
        print(f"{N} requests in {result.ended - result.started:.1f}s; spans {len(spans)}; from the spool "
              f"{spooled}; relay runs sent {first.get('spans_sent')} + {second.get('spans_sent')}")
        assert_exact(s, planned, result, spans)
        assert spooled > 0
        for c in (first, second):
            assert (c["spans_dropped"], c["pipe.queue_full"], c["pipe.malformed"]) == (0, 0, 0), c
            assert c["spans_sent"] == c["pipe.received"], c
