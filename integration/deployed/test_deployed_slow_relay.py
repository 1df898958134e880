"""Deployed topology (Traefik at its default log level, relay on the FIFO only): the relay stalls
(SIGSTOP) while Traefik serves an unpaced burst larger than the pipe holds, then goes on (SIGCONT).

Once the pipe is full the plugin's writes answer EAGAIN and it appends those frames to the spool
instead; the relay drains the spool when it runs again. Every request becomes exactly one span,
none goes to Traefik's log.
"""

from __future__ import annotations

import signal

import load
from deployed import assert_exact, handed_on_from_spool, wait_exact

# The relay asks for a 1 MiB pipe; a /load/ frame is about 190 bytes: 8,000 frames are ~1.5 MiB.
N = 8_000
CONCURRENCY = 32


def test_full_pipe_spills_into_the_spool_and_nothing_is_lost(deployed) -> None:
    p = deployed()
    assert p.relay.proc is not None
    p.relay.proc.send_signal(signal.SIGSTOP)
    try:
        planned = load.plan(N)
        result = load.run(p.traefik.port("web"), planned, CONCURRENCY)
    finally:
        p.relay.proc.send_signal(signal.SIGCONT)
    assert result.errors == [], result.errors[:5]
    assert result.wrong == [], result.wrong[:5]

    spans = wait_exact(p, {r.path for r in planned})
    rc = p.relay.stop()
    counters = p.relay.counters()
    spooled = handed_on_from_spool(p)
    print(f"\nspans={len(spans)} of {N}; from the spool {spooled}; burst "
          f"{N / (result.ended - result.started):.0f} req/s; relay {counters}")
    assert_exact(p, spans, {r.path for r in planned})
    assert spooled > 0, "the pipe never filled: the test proves nothing"
    assert rc == 0
    assert (counters["spans_dropped"], counters["pipe.queue_full"], counters["pipe.malformed"]) == (0, 0, 0)
    assert counters["spans_sent"] == counters["pipe.received"]
    assert p.agent.check_failures() == ""
