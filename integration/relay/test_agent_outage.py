"""The Datadog agent is stopped for 10 s and restarted on the same port under a paced load (pipe mode).

The relay holds spans while the agent is away (bounded by --max-buffered-spans/--max-buffered-bytes,
oldest dropped and counted beyond), retries with backoff, and delivers once the agent is back.
Every request is accounted for exactly: spans at the agent (before + after the outage) plus the
spans the relay reports dropped equal the requests sent. Clients never notice.

- default span cap, byte cap set to 4 MiB: 10 s at 400 requests/s fits, so nothing is dropped and
  the agent gets exactly N spans; the relay's memory stays bounded while it holds them.
- --max-buffered-spans 500: spans are dropped (counted), and delivered + dropped == N still. The
  oldest payloads are the ones dropped and the newest is always kept: every dropped request was
  held during the outage (none completed well before it), and the last request to complete
  arrived. Which other recent spans survive depends on when the relay drains: on a busy machine
  the load can end before the agent is back, and the last payloads then evict each other down to
  the newest ones within the cap, so "the last second of the load" is printed, not asserted.

The test agent keeps what it received in memory, so its spans are read just before it is stopped,
right after a payload arrived (the relay sends one per --flush-interval, 1 s), and the relay's own
`spans_sent` total is checked against what both agent runs hold: no payload slipped in unseen.

Real parts: Traefik 3.7.15 with the plugin, the official Datadog test agent, the relay binary.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import load
from datadog import TestAgent, span_path
from pipeline import start_pipe_pipeline

N = 6_000
RATE = 400.0  # 15 s of load
CONCURRENCY = 32
OUTAGE_AT = 2.0  # s into the load (then right after the next payload lands)
OUTAGE = 10.0  # s
MAX_BUFFERED_BYTES = 4 << 20
# Peak RSS allowed while holding the spans: the byte cap, plus 12 MiB for everything else
# (measured: ~3 MiB idle, ~6 MiB holding 4,000 spans).
RSS_CAP_KIB = (MAX_BUFFERED_BYTES >> 10) + 12 * 1024


def load_spans(traces: list[list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for t in traces:
        for s in t:
            out.setdefault(span_path(s), []).append(s)
    return out


def traces_right_after_a_payload(agent: TestAgent, timeout: float = 30.0) -> list[list[dict[str, Any]]]:
    """The agent's traces, read as soon as their number grows (a payload just arrived)."""
    before = len(agent.traces())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = agent.traces()
        if len(now) > before:
            return now
        time.sleep(0.02)
    pytest.fail(f"no payload reached the agent within {timeout}s")


class RssSampler:
    """Samples the relay's VmRSS every 100 ms in a thread."""

    def __init__(self, read) -> None:
        self.read = read
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.read())
                self.samples += 1
            except OSError:
                return
            self._stop.wait(0.1)

    def stop(self) -> int:
        self._stop.set()
        self._t.join(2)
        return self.peak


@pytest.mark.parametrize("caps,expect_drops", [
    (["--max-buffered-bytes", str(MAX_BUFFERED_BYTES), "--telemetry-interval", "1s"], False),
    (["--max-buffered-spans", "500", "--batch-spans", "500", "--telemetry-interval", "1s"], True),
], ids=["within-caps", "tiny-span-cap"])
def test_agent_outage_exact_accounting(tmp_path, traefik_factory, caps, expect_drops) -> None:
    p = start_pipe_pipeline(tmp_path, traefik_factory, relay_extra=caps)
    agents = [p.agent]
    try:
        planned = load.plan(N)
        want = {r.path for r in planned}
        bg = load.Background(p.traefik.port("web"), planned, CONCURRENCY, rate=RATE)
        time.sleep(OUTAGE_AT)
        rss_before = p.relay.rss_kib()
        before = traces_right_after_a_payload(p.agent)
        p.agent.stop()
        down_at = time.monotonic()
        down_wall = time.time_ns()
        sampler = RssSampler(p.relay.rss_kib)
        time.sleep(OUTAGE)
        rss_peak = sampler.stop()
        agent2 = TestAgent(tmp_path / "agent-restarted", port=p.agent.port).start()
        up_wall = time.time_ns()
        agents.append(agent2)
        p.agent = agent2
        result = bg.join()
        assert result.errors == [], result.errors[:5]
        assert result.wrong == [], result.wrong[:5]
        assert result.sent == N

        # Delivery resumes and the relay drains: every record it read is sent or counted dropped
        # and it holds nothing (backoff is at most 5 s, then the held payloads drain). Judged on
        # the relay's own counters (one line a second), so a slow machine only takes longer.
        drained_at = time.monotonic()
        deadline = drained_at + 90
        while True:
            c = p.relay.counters()
            if (c and c["buffered_spans"] == 0 and c["queue_depth"] == 0
                    and c["spans_sent"] + c["spans_dropped"] == c["pipe.received"] >= N):
                break
            assert time.monotonic() < deadline, f"the relay did not drain after the restart: {c}"
            time.sleep(0.5)
        drained_in = time.monotonic() - drained_at
        time.sleep(1.5)  # let late or duplicate payloads show
        after_traces = agent2.traces()
        assert p.relay.stop() == 0
        c = p.relay.counters()
        assert c, p.relay.log()[-2000:]

        spans_before, spans_after = load_spans(before), load_spans(after_traces)
        in_both = spans_before.keys() & spans_after.keys()
        everything: dict[str, list[dict[str, Any]]] = {}
        for part in (spans_before, spans_after):
            for k, v in part.items():
                everything.setdefault(k, []).extend(v)
        dupes = {k: len(v) for k, v in everything.items() if len(v) > 1}
        ready = [k for k in everything if k.startswith("/__ready/")]
        load_paths = {k for k in everything if k.startswith("/load/")}
        delivered = len(load_paths)
        dropped = c["spans_dropped"]
        print(f"\ncaps={caps}: delivered={delivered} (before outage {len(spans_before) - len(ready)}, after "
              f"{len(spans_after)}) dropped={dropped} (buffer_full={c['buffer_full']}, cap hits "
              f"{c['buffer_cap_hits']}) RSS before={rss_before} KiB peak during outage={rss_peak} KiB "
              f"({sampler.samples} samples) retries={c['payloads_retried']} agent_errors={c['agent_errors']}; "
              f"load {result.ended - result.started:.1f}s, relay drained {drained_in:.1f}s after it; last second "
              f"of the load delivered: {sum(r.path in load_paths for r in planned[-400:])}/400")

        assert in_both == set() and dupes == {}, f"duplicate spans: {list(dupes.items())[:5]}"
        assert load_paths <= want
        # The relay's total of spans acknowledged by the agent equals what the two agent runs hold.
        assert c["spans_sent"] == delivered + len(ready), (c, delivered, len(ready))
        assert c["pipe.received"] == N + len(ready) and c["pipe.queue_full"] == 0 and c["pipe.malformed"] == 0, c
        assert delivered + dropped == N, f"delivered {delivered} + dropped {dropped} != {N}"
        assert dropped == c["buffer_full"], c  # nothing else: not rejected, not lost at shutdown
        assert c["agent_errors"] > 0 and c["payloads_retried"] > 0, c
        # Delivery resumed after the restart, with spans of requests made during the outage.
        during = [s for k, (s,) in spans_after.items() if down_wall < int(s["start"]) < up_wall]
        assert during, "no span of a request made during the outage was delivered"
        assert rss_peak < RSS_CAP_KIB, f"relay RSS {rss_peak} KiB while the agent was down (cap {RSS_CAP_KIB})"
        if expect_drops:
            assert dropped > 0 and c["buffer_cap_hits"] > 0, c
            # The oldest payloads are the ones dropped, never what came before them: between the
            # first agent's last payload and the dropped ones lies the payload the sender was
            # holding at the stop (about a flush interval of requests), so every dropped request
            # completed after every request the first agent holds (250 ms allowed for a client
            # thread that reads its response late).
            dropped_done = min(result.done_ns[k] for k in want - load_paths)
            before_done = max(result.done_ns[k] for k in spans_before if k.startswith("/load/"))
            assert dropped_done > before_done - 250_000_000, (
                f"a request that completed {(before_done - dropped_done) / 1e9:.2f}s before the first agent's "
                f"last span was dropped")
            # The newest payload is always kept: of the last 10 requests to complete (the last
            # records the relay read, to a client's delay) at least one arrived.
            last = sorted(want, key=lambda k: result.done_ns[k])[-10:]
            assert set(last) & load_paths, f"the last requests to complete were all dropped: {last}"
        else:
            assert dropped == 0 and c["buffer_cap_hits"] == 0, c
            assert load_paths == want
        assert agent2.check_failures() == ""
        # Bounded recovery, generous for a machine busy with other work (idle: ~20 s).
        assert time.monotonic() - down_at < 120
    finally:
        p.relay.stop()
        for a in agents:
            a.stop()
        p.statsd.close()
