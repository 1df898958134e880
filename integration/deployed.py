"""The deployed topology as processes (deploy/k8s/traefik-values.yaml): Traefik at its DEFAULT log
level (ERROR), the plugin in pipe mode on a mounted directory, the relay reading only the FIFO (and
the spool beside it). Shared by the test_deployed_*.py tests, which break one part under load and
then check that every answered request became exactly one span."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path
from typing import Any, Callable

from datadog import Relay, StatsdListener, TestAgent
from harness import DD_CONFIG, Route, Traefik
from pipeline import FIFO_NAME, GUEST_DIR, Pipeline, relay_args

SPOOL_NAME = FIFO_NAME + ".spool"
# The relay deletes a drained spool file once it stayed unchanged this long (relay/src/input/spool.rs).
SETTLE_S = 2.0


def deployed_relay(tmp: Path, agent: TestAgent, statsd: StatsdListener, *extra: str) -> Relay:
    return Relay(tmp / "relay", relay_args(agent, statsd, "--pipe", str(tmp / "run" / FIFO_NAME), *extra))


def plugin_config(plugin: dict[str, Any] | None = None) -> dict[str, Any]:
    """The middleware's configuration as deployed: pipe mode on the FIFO in the mounted directory."""
    return {**DD_CONFIG, "mode": "pipe", "pipePath": f"{GUEST_DIR}/{FIFO_NAME}", **(plugin or {})}


def start_traefik(tmp: Path, traefik_factory: Callable[..., Traefik], plugin: dict[str, Any] | None = None) -> Traefik:
    conf = plugin_config(plugin)
    return traefik_factory(middlewares={"dd": conf}, routes=[Route("web", ["dd"])],
                           mounts=[f"{tmp / 'run'}:{GUEST_DIR}"], log_level=None)


def start_deployed(tmp: Path, traefik_factory: Callable[..., Traefik], *, relay_first: bool = True,
                   relay_extra: tuple[str, ...] = (), plugin: dict[str, Any] | None = None) -> Pipeline:
    """Agent, DogStatsD listener, relay (unless ``relay_first`` is false: then started by the test;
    ``relay_extra``: flags after the deployed ones), Traefik (``plugin``: options over the deployed
    ones). The relay creates the FIFO as in the pod. Tests take it through the ``deployed`` fixture
    (conftest.py), which stops what it started."""
    agent = TestAgent(tmp / "agent").start()
    statsd = StatsdListener()
    (tmp / "run").mkdir(parents=True, exist_ok=True)
    relay = deployed_relay(tmp, agent, statsd, *relay_extra)
    fifo = tmp / "run" / FIFO_NAME
    if relay_first:
        relay.start()
        deadline = time.monotonic() + 10
        while not fifo.exists():
            assert time.monotonic() < deadline, f"relay did not create {fifo}: {relay.log()}"
            time.sleep(0.05)
    traefik = start_traefik(tmp, traefik_factory, plugin)
    return Pipeline(agent, statsd, relay, traefik, fifo)


def stop_deployed(p: Pipeline) -> None:
    """Stops what ``start_deployed`` started but Traefik (the Traefik fixture stops it); a relay a
    test left stopped (SIGSTOP) is continued first, so that it can exit."""
    if p.relay.proc is not None and p.relay.proc.poll() is None:
        p.relay.proc.send_signal(signal.SIGCONT)
    p.relay.stop()
    p.agent.stop()
    p.statsd.close()


def spool_files(p: Pipeline) -> list[str]:
    return sorted(f.name for f in p.fifo.parent.iterdir() if f.name.startswith(SPOOL_NAME))


def handed_on_from_spool(p: Pipeline) -> int:
    """Records the relay handed on from drained spool files (its `handed on N records` lines)."""
    return sum(int(n) for n in re.findall(r"spool .*: handed on (\d+) records from", p.relay.log()))


def wait_exact(p: Pipeline, want: set[str], timeout: float = 60.0) -> dict[str, list[dict[str, Any]]]:
    """Waits (bounded) until every path in ``want`` has a span and the spool is drained, then one
    more settle period so that a late duplicate would show; returns the spans by path."""
    deadline = time.monotonic() + timeout
    while True:
        spans = p.spans("/load/")
        if (want <= spans.keys() and not spool_files(p)) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    time.sleep(SETTLE_S + 1.5)
    return p.spans("/load/")


def assert_exact(p: Pipeline, spans: dict[str, list[dict[str, Any]]], answered: set[str],
                 unanswered: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """Every answered request is exactly one span; a request the client saw fail (Traefik went away
    mid-request) is at most one; nothing else; no fallback line at all in Traefik's output."""
    missing = sorted(answered - spans.keys(), key=lambda s: int(s.rsplit("/", 1)[1]))
    dups = {k: len(v) for k, v in spans.items() if len(v) > 1}
    extra = sorted(spans.keys() - answered - unanswered)
    assert missing == [], (f"{len(missing)} answered requests have no span, e.g. {missing[:10]}; "
                           f"spool now {spool_files(p)}; relay log tail:\n{p.relay.log()[-3000:]}")
    assert dups == {}, f"duplicate spans: {list(dups.items())[:10]}"
    assert extra == [], f"spans for requests never sent: {extra[:10]}"
    lines = p.traefik.records(include_ready=True)
    assert lines == [], f"{len(lines)} records went to Traefik's log instead: {lines[:3]}"
    assert spool_files(p) == [], "the spool was not drained"
