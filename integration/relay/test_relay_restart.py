"""The relay is stopped (SIGTERM) for 10 s and restarted while Traefik serves a paced load in pipe mode,
with the spool turned off (`spoolMaxBytes: 0`; test_deployed_relay_restart.py has it on).

The plugin writes each record as one frame to the FIFO; with no reader (and no spool) it writes the
record as a fallback line through Traefik's log instead and tries the FIFO again every 3 s. So every request
must end up exactly once: as one span at the agent (through the relay) or as one fallback line in
Traefik's output, never both, never neither; and the pipe is used again within 3 s of the restart.
Clients never see an error.

Real parts: Traefik 3.7.15 with the plugin, the official Datadog test agent, the relay binary.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import load
from pipeline import Pipeline, start_pipe_pipeline

N = 6_000
RATE = 400.0  # requests/s: the load lasts 15 s
CONCURRENCY = 32
STOP_AT = 1.0  # s after the load starts
DOWN_FOR = 10.0  # s
RETRY_S = 3.0  # the plugin's FIFO retry interval (core/src/transport/pipe.rs RETRY_NS)


def accounted(p: Pipeline) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[Any]]]:
    """(spans at the agent, fallback lines in Traefik's output), by request path."""
    spans = p.spans("/load/")
    lines: dict[str, list[Any]] = {}
    for r in p.traefik.records():
        path = str(r.data.get("RequestPath"))
        if path.startswith("/load/"):
            lines.setdefault(path, []).append(r)
    return spans, lines


def test_relay_restart_loses_and_duplicates_nothing(tmp_path, traefik_factory) -> None:
    p = start_pipe_pipeline(tmp_path, traefik_factory, plugin={"spoolMaxBytes": 0})
    try:
        planned = load.plan(N)
        want = {r.path for r in planned}
        bg = load.Background(p.traefik.port("web"), planned, CONCURRENCY, rate=RATE)
        time.sleep(STOP_AT)
        t0 = time.monotonic()
        stop_wall = time.time_ns()
        rc1 = p.relay.stop()
        stopped_in = time.monotonic() - t0
        first = p.relay.counters()
        time.sleep(max(0.0, DOWN_FOR - (time.monotonic() - t0)))
        restart_wall = time.time_ns()
        p.relay.start()
        result = bg.join()
        assert result.errors == [], result.errors[:5]
        assert result.wrong == [], result.wrong[:5]
        assert result.sent == N

        # Wait (bounded) until every request is accounted for one way or the other, then a little
        # more so that a late duplicate would show.
        deadline = time.monotonic() + 10
        while True:
            spans, lines = accounted(p)
            if want <= spans.keys() | lines.keys() or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        time.sleep(1.5)
        spans, lines = accounted(p)
        rc2 = p.relay.stop()
        second = p.relay.counters()

        both = sorted(spans.keys() & lines.keys())
        missing = sorted(want - spans.keys() - lines.keys())
        dup_spans = {k: len(v) for k, v in spans.items() if len(v) > 1}
        dup_lines = {k: len(v) for k, v in lines.items() if len(v) > 1}
        delivered, fell_back = len(spans), len(lines)
        since_stop = Counter((int(r[0].data["start_ns"]) - stop_wall) // 1_000_000_000 for r in lines.values())
        print(f"\ndelivered={delivered} fell_back={fell_back} missing={len(missing)} both={len(both)}; "
              f"relay stopped in {stopped_in:.2f}s; fallback lines per second since the stop: "
              f"{sorted(since_stop.items())}; relay runs: spans_sent {first.get('spans_sent')} + "
              f"{second.get('spans_sent')}")
        nums = sorted(int(m.rsplit("/", 1)[1]) for m in missing)
        assert missing == [], (
            f"{len(missing)} requests neither delivered nor written as a fallback line "
            f"(request numbers {nums[:10]} ... {nums[-5:]}; the relay was stopped {STOP_AT}s into the load, "
            f"about request {int(STOP_AT * RATE)}); delivered={delivered} fell_back={fell_back}")
        assert both == [], f"{len(both)} requests both delivered and written as a line: {both[:5]}"
        assert dup_spans == {}, f"duplicate spans: {list(dup_spans.items())[:5]}"
        assert dup_lines == {}, f"duplicate fallback lines: {list(dup_lines.items())[:5]}"
        assert delivered + fell_back == N
        assert fell_back > 0

        # Fallback lines only while the relay was away: none for a request that ended (its record
        # written) before the stop, none for requests that started more than the retry interval
        # after the restart (plus 0.5 s for the restart).
        early = [k for k, (r,) in lines.items() if int(r.data["start_ns"]) + int(r.data["Duration"]) < stop_wall]
        late = [k for k, (r,) in lines.items() if int(r.data["start_ns"]) > restart_wall + (RETRY_S + 0.5) * 1e9]
        assert early == [], f"fell back before the relay stopped: {early[:5]}"
        assert late == [], f"still falling back {RETRY_S + 0.5}s after the restart: {len(late)}, e.g. {late[:5]}"
        back = [k for k, (s,) in spans.items() if int(s["start"]) > restart_wall]
        assert back, "no span for a request after the restart"

        # The relay's own accounting agrees: everything it read was sent, nothing dropped.
        assert rc1 == 0 and rc2 == 0
        assert first and second, p.relay.log()[-2000:]
        for c in (first, second):
            assert (c["spans_dropped"], c["pipe.queue_full"], c["pipe.malformed"]) == (0, 0, 0), c
            assert c["spans_sent"] == c["pipe.received"], c
        ready = sum(1 for s in p.agent.spans() if "/__ready/" in s.get("meta", {}).get("http.url", ""))
        assert first["spans_sent"] + second["spans_sent"] == delivered + ready

        # Both ways carry the whole record: the status the client got.
        status = {r.path: str(r.status) for r in planned}
        assert [k for k, (r,) in lines.items() if str(r.data["DownstreamStatus"]) != status[k]] == []
        assert [k for k, (s,) in spans.items() if s["meta"].get("http.status_code") != status[k]] == []
        assert p.agent.check_failures() == ""
    finally:
        p.relay.stop()
        p.agent.stop()
        p.statsd.close()
