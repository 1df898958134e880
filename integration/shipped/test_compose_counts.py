"""deploy/compose/ as shipped, in Docker: N requests through Traefik -> exactly N spans at the agent
and N hits in DogStatsD.

The project's images built from deploy/Dockerfile (integration/containers.py: which stages are
real, which upstream images are local stand-ins), docker-compose.yml unchanged plus
agent-on-host.yml: the official Datadog APM test agent and a DogStatsD listener run on the host,
reached by the relay (and Traefik's own metrics) through the host gateway. Every request has its
own path, so each span maps back to it; the relay's final counters must show every record it read
sent, nothing dropped.
"""

from __future__ import annotations

import load
from containers import PORT, assert_exact, relay_counters, stack, whoami_answer
from harness import READY_PREFIX

N = 5_000
CONCURRENCY = 16


def test_every_request_is_one_span_and_one_hit(tmp_path) -> None:
    with stack(tmp_path, "tdp-counts") as s:
        planned = load.plan(N)
        result = load.run(PORT, planned, CONCURRENCY, check=whoami_answer)
        spans = s.wait_spans({r.path for r in planned})
        print(f"{N} requests at c={CONCURRENCY} in {result.ended - result.started:.1f}s; spans {len(spans)}")
        assert_exact(s, planned, result, spans)

        # The relay's own account, after a SIGTERM: every record it read (the load's and the
        # readiness requests') went out as a span.
        ready = sum(len(v) for v in s.spans(READY_PREFIX).values())
        s.compose.run("stop", "relay")
        (c,) = relay_counters(s.compose.logs("relay"))
        print(f"relay counters: {c}")
        assert (c["pipe.received"], c["spans_sent"]) == (N + ready, N + ready)
        assert (c["spans_dropped"], c["pipe.queue_full"], c["pipe.malformed"]) == (0, 0, 0)
