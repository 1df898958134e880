"""N requests in -> exactly N spans at the agent and N counted hits in DogStatsD.

Spans arrive within about 2 s of the load's end on an idle machine (printed). The assertion is
relative, so that a machine busy with other work does not fail it while a relay that holds spans
back still does: all spans within 10 s of the load's end, or within the load's own duration if the
machine was slow enough to stretch that beyond 10 s (both scale with the CPU the box has to spare).

Through the production path (plugin in pipe mode -> FIFO -> relay) and through the fallback path
(plugin in log mode, Traefik's output piped into the relay), with the real Traefik, the official
Datadog test agent and a real UDP DogStatsD listener.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

import load
from pipeline import Pipeline, start_log_pipeline, start_pipe_pipeline

N = 10_000
CONCURRENCY = 32
METRIC = "traefik_datadog.request"


def check_exact(p: Pipeline, planned: list[load.Planned], result: load.LoadResult) -> None:
    assert result.errors == [], result.errors[:5]
    assert result.wrong == [], result.wrong[:5]
    want = {r.path: r for r in planned}
    took = result.ended - result.started
    bound = max(10.0, took)
    got = p.wait_spans(set(want), timeout=bound + 30.0)
    waited = time.monotonic() - result.ended
    print(f"all spans {waited:.2f}s after a load of {took:.1f}s (~2 s on an idle machine; bound {bound:.1f}s)")
    missing = sorted(set(want) - got.keys())
    assert missing == [], f"{len(missing)} requests without a span {waited:.1f}s after the load, e.g. {missing[:5]}"
    assert waited <= bound, f"spans complete only {waited:.1f}s after a load of {took:.1f}s"
    dupes = {k: len(v) for k, v in got.items() if len(v) != 1}
    assert dupes == {}, f"requests with more than one span: {list(dupes.items())[:5]}"
    assert len(got) == N

    bad = []
    for path, (span,) in got.items():
        req = want[path]
        expect = (req.host, str(req.status), int(req.status >= 500), req.method, "traefik.request", "edge", "web")
        seen = (span["resource"], span["meta"].get("http.status_code"), span["error"],
                span["meta"].get("http.method"), span["name"], span["service"], span.get("type"))
        if seen != expect:
            bad.append(f"{path}: {seen} != {expect}")
    assert bad == [], "\n".join(bad[:10])
    assert p.agent.check_failures() == ""

    # DogStatsD: hits sum to N, errors to the 5xx sent, per host too.
    errors_sent = sum(1 for r in planned if r.status >= 500)
    # The relay sends DogStatsD beside the spans: by now it is out, or close (generous for a busy box).
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline and p.statsd.total(f"{METRIC}.hits", env="test") < N:
        time.sleep(0.1)
    hosts = Counter(r.host for r in planned)
    got_hits = {h: p.statsd.total(f"{METRIC}.hits", resource=h) for h in hosts}
    assert got_hits == {h: float(c) for h, c in hosts.items()}
    assert p.statsd.total(f"{METRIC}.errors", resource="a.test") + p.statsd.total(
        f"{METRIC}.errors", resource="b.test") + p.statsd.total(f"{METRIC}.errors", resource="c.test") == errors_sent
    by_status = p.statsd.by_tag(f"{METRIC}.hits", "http.status_code")
    for status, count in Counter(str(r.status) for r in planned).items():
        assert by_status[status] >= count  # readiness probes add 200s
    assert p.statsd.malformed == []


def test_pipe_mode_exact(tmp_path, traefik_factory) -> None:
    p = start_pipe_pipeline(tmp_path, traefik_factory)
    try:
        planned = load.plan(N)
        result = load.run(p.traefik.port("web"), planned, CONCURRENCY)
        check_exact(p, planned, result)
        # Nothing fell back to log lines: the pipe carried everything.
        assert p.traefik.records() == []
    finally:
        p.relay.stop()
        p.agent.stop()
        p.statsd.close()


@pytest.mark.parametrize("log_format", ["json", "common"])
def test_log_mode_through_stdin_exact(tmp_path, traefik_factory, log_format) -> None:
    p = start_log_pipeline(tmp_path, traefik_factory, log_format=log_format)
    try:
        planned = load.plan(N)
        result = load.run(p.traefik.port("web"), planned, CONCURRENCY)
        check_exact(p, planned, result)
        # The relay consumed the plugin's lines and passed Traefik's own lines through.
        assert p.traefik.records() == []
        assert "Configuration loaded" in p.traefik.output() or "Starting provider" in p.traefik.output()
    finally:
        p.traefik.stop()
        p.relay.stop()
        p.agent.stop()
        p.statsd.close()
