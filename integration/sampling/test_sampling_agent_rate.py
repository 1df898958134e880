"""Without `sampleRate` the plugin follows the agent's rate, as dd-trace does: the test agent answers
rate 0.1 for `service:edge,env:test`; the relay publishes it beside the FIFO; two seconds later every
instance decides with it. Of 10,000 requests: 10,000 spans arrive (priority-0 ones too, so APM hits
stay exact) and 10,000 hits are counted; each span is kept (priority 1) or dropped (0) exactly as
dd-trace's Knuth rule decides for its trace id at 0.1, marked `_dd.p.dm=-1`, `_dd.agent_psr=0.1`; the
kept count is within 5 sigma of 1,000."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import load
from sampling import CHECK_EVERY_S, OWN_KEY, binomial_bounds, keeps, sleep_until, start

N = 10_000
RATE = 0.1
RATES = {OWN_KEY: RATE, "service:,env:": 1.0}
METRIC = "traefik_datadog.request"


def test_agent_rate_is_followed_and_every_span_arrives(tmp_path: Path, backend: Any) -> None:
    s = start(tmp_path, backend, RATES)
    try:
        seen = s.wait_rates(RATES)
        sleep_until(seen + CHECK_EVERY_S + 0.1)
        t0 = time.monotonic()
        result = load.run(s.traefik.port("web"), load.plan(N), concurrency=8)
        took = time.monotonic() - t0
        assert result.sent == N and not result.wrong and not result.errors, (result.wrong[:5], result.errors[:5])
        paths = {f"/load/{n}" for n in range(N)}
        got = s.wait_spans(paths, "/load/", timeout=180)
        assert got.keys() == paths, f"{len(paths - got.keys())} spans missing"
        kept = 0
        for path, spans in got.items():
            assert len(spans) == 1, (path, spans)
            sp = spans[0]
            want = 1.0 if keeps(sp["trace_id"], RATE) else 0.0
            assert sp["metrics"]["_sampling_priority_v1"] == want, sp
            assert sp["meta"]["_dd.p.dm"] == "-1", sp
            assert sp["metrics"]["_dd.agent_psr"] == RATE, sp
            assert "_dd.rule_psr" not in sp["metrics"], sp
            kept += want == 1.0
        low, high = binomial_bounds(N, RATE)
        assert low <= kept <= high, f"kept {kept} of {N}, outside [{low:.0f}, {high:.0f}]"
        deadline = time.monotonic() + 30
        hosts = ("a.test", "b.test", "c.test")

        def hits() -> float:
            return sum(s.statsd.total(f"{METRIC}.hits", resource=h) for h in hosts)

        while hits() < N and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.5)  # one more metrics interval: nothing beyond N may arrive
        assert hits() == N
        print(f"agent rate {RATE}: {kept} of {N} kept (5 sigma: {low:.0f}..{high:.0f}), "
              f"{len(got)} spans, {hits():.0f} hits, load {took:.1f} s")
    finally:
        s.stop()
