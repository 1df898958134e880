"""Shared pieces of the sampling tests: the test agent answering chosen `rate_by_service`, the relay
publishing them beside the FIFO, and dd-trace's keep rule to check every decision exactly.

The official test agent answers each `/v0.4/traces` with the rates of the latest sessionless
`/test/session/start?agent_sample_rate_by_service=<json>` (none: `{}`), so it stands in for an agent
whose rates are chosen. A new session start also hides earlier traces from `/test/session/traces`:
collect what a phase produced before changing the rates.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from datadog import Relay, StatsdListener, TestAgent
from harness import DD_CONFIG, Route, Traefik
from pipeline import FIFO_NAME, GUEST_DIR, relay_args
from traced_backend import TracedBackend

KNUTH = 1111111111111111111
RATES_FILE = "traefik-datadog.rates"
# How often an instance looks at the rates file (tdp_core::transport::watch::CHECK_EVERY_NS): a request that
# starts this long after the file changed is decided with the new rates, by every instance.
CHECK_EVERY_S = 2.0
OWN_KEY = f"service:{DD_CONFIG['service']},env:{DD_CONFIG['env']}"


def keeps(trace_id: int, rate: float) -> bool:
    """dd-trace's rule: low64(trace_id) * 1111111111111111111 (wrapping) <= rate * 2^64."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return (trace_id * KNUTH) % 2**64 <= int(rate * 2.0**64)


def binomial_bounds(n: int, p: float, sigmas: float = 5.0) -> tuple[float, float]:
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    return mean - sigmas * sd, mean + sigmas * sd


def set_agent_rates(agent: TestAgent, rates: dict[str, float]) -> None:
    r = requests.get(f"{agent.url}/test/session/start",
                     params={"agent_sample_rate_by_service": json.dumps(rates)}, timeout=10)
    assert r.status_code == 200, r.text


def rates_text(rates: dict[str, float]) -> str:
    """The file the relay publishes for `rates` (sorted by key, rates as shortest decimals)."""
    def num(v: float) -> str:
        return str(int(v)) if v == int(v) else repr(v)
    return "".join(f"{k}\t{num(v)}\n" for k, v in sorted(rates.items()))


def span_path(span: dict[str, Any]) -> str:
    url = span.get("meta", {}).get("http.url", "")
    return "/" + url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url


@dataclass
class SamplingStack:
    agent: TestAgent
    statsd: StatsdListener
    relay: Relay
    traefik: Traefik
    run_dir: Path
    backend: Any

    @property
    def rates_file(self) -> Path:
        return self.run_dir / RATES_FILE

    def wait_rates(self, rates: dict[str, float], timeout: float = 30.0) -> float:
        """Waits until the relay has published `rates`; returns when that was seen (time.time())."""
        want = rates_text(rates)
        deadline = time.monotonic() + timeout
        while True:
            got = self.rates_file.read_text() if self.rates_file.exists() else None
            if got == want:
                return time.time()
            assert time.monotonic() < deadline, f"rates file holds {got!r}, want {want!r}; relay: {self.relay.log()[-2000:]}"
            time.sleep(0.02)

    def spans(self, prefix: str) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for s in self.agent.spans():
            p = span_path(s)
            if p.startswith(prefix):
                out.setdefault(p, []).append(s)
        return out

    def wait_spans(self, paths: set[str], prefix: str, timeout: float = 120.0) -> dict[str, list[dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.spans(prefix)
            if paths <= got.keys() or time.monotonic() > deadline:
                return got
            time.sleep(0.5)

    def stop(self) -> None:
        stops = [self.traefik.stop, self.relay.stop, self.statsd.close, self.agent.stop]
        if isinstance(self.backend, TracedBackend):
            stops.insert(1, self.backend.stop)
        for stop in stops:
            try:
                stop()
            except Exception as e:  # keep stopping the others
                print(f"stop failed: {e!r}")


def start(tmp: Path, backend: Any, rates: dict[str, float] | None, *,
          middlewares: dict[str, dict[str, Any]] | None = None, routes: list[Route] | None = None) -> SamplingStack:
    """Test agent answering `rates` (None: the agent's default, no rates) -> relay (--pipe, publishing
    beside the FIFO, 100 ms flushes) <- Traefik with the plugin in pipe mode (middleware `dd` on
    route `web` unless given) -> `backend`, or with backend `"traced"` a ddtrace backend reporting to
    the same agent (stopped with the stack)."""
    agent = TestAgent(tmp / "agent").start()
    if rates is not None:
        set_agent_rates(agent, rates)
    if backend == "traced":
        backend = TracedBackend(tmp / "backend.log", agent.url, "default")
    statsd = StatsdListener()
    run_dir = tmp / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    fifo = run_dir / FIFO_NAME
    relay = Relay(tmp / "relay", relay_args(agent, statsd, "--pipe", str(fifo)) + ["--flush-interval", "100ms"]).start()
    deadline = time.monotonic() + 10
    while not fifo.exists():
        assert time.monotonic() < deadline, f"relay did not create {fifo}: {relay.log()}"
        time.sleep(0.05)
    base = {**DD_CONFIG, "mode": "pipe", "pipePath": f"{GUEST_DIR}/{FIFO_NAME}"}
    mws = {name: {**base, **conf} for name, conf in (middlewares or {"dd": {}}).items()}
    traefik = Traefik(tmp / "traefik", backend, routes=routes or [Route("web", ["dd"])], middlewares=mws,
                      mounts=[f"{run_dir}:{GUEST_DIR}"])
    traefik.start()
    return SamplingStack(agent, statsd, relay, traefik, run_dir, backend)


def sleep_until(t: float) -> None:
    while (left := t - time.time()) > 0:
        time.sleep(min(left, 0.5))
