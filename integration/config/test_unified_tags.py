"""Unified service tagging from Traefik's environment: the plugin's static `settings.envs` names
DD_SERVICE, DD_ENV, DD_VERSION and DD_TAGS, Traefik hands the guest its own values, and every span
and DogStatsD metric carries them: the three as defaults under the Middleware's own keys (a
Middleware's `service` wins), DD_TAGS (dd-trace's format) as tags that never replace the span's own
(pipe mode, relay without any DD_* variable, test agent, DogStatsD listener)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import requests

from datadog import Relay, StatsdListener, TestAgent
from harness import Route
from pipeline import FIFO_NAME, GUEST_DIR, Pipeline, relay_args, relay_env

N = 5
ENVS = {
    "DD_SERVICE": "from-env",
    "DD_ENV": "staging",
    "DD_VERSION": "2.0.1",
    "DD_TAGS": "team:edge, region:eu-west-1,http.status_code:999,bad|tag:x",
}


def test_settings_envs_tag_spans_and_metrics_and_the_middleware_wins(tmp_path: Path, traefik_factory: Any) -> None:
    agent = TestAgent(tmp_path / "agent").start()
    statsd = StatsdListener()
    run = tmp_path / "run"
    run.mkdir()
    fifo = run / FIFO_NAME
    relay = Relay(tmp_path / "relay", relay_args(agent, statsd, "--pipe", str(fifo)), env=relay_env()).start()
    try:
        deadline = time.monotonic() + 10
        while not fifo.exists():
            assert time.monotonic() < deadline, relay.log()
            time.sleep(0.05)
        pipe = {"mode": "pipe", "pipePath": f"{GUEST_DIR}/{FIFO_NAME}"}
        traefik = traefik_factory(
            middlewares={"dd": pipe, "dd-shop": {**pipe, "service": "shop"}},
            routes=[Route("web", ["dd"]), Route("shop", ["dd-shop"])],
            mounts=[f"{run}:{GUEST_DIR}"], plugin_envs=list(ENVS), env=ENVS)
        p = Pipeline(agent, statsd, relay, traefik, fifo)
        for n in range(N):
            for route in ("web", "shop"):
                r = requests.get(traefik.url(route) + f"/load/{route}/{n}", timeout=10)
                assert r.status_code == 200
        paths = {f"/load/{route}/{n}" for n in range(N) for route in ("web", "shop")}
        got = p.wait_spans(paths, timeout=30)
        assert got.keys() >= paths, sorted(got)
        for path in paths:
            (span,) = got[path]
            want_service = "shop" if path.startswith("/load/shop/") else "from-env"
            assert span["service"] == want_service, span
            meta = span["meta"]
            assert (meta["env"], meta["version"]) == ("staging", "2.0.1"), meta
            assert (meta["team"], meta["region"]) == ("edge", "eu-west-1"), meta
            # DD_TAGS never replaces the span's own tags; garbage is left out.
            assert meta["http.status_code"] == "200", meta
            assert not any(k.startswith("bad") for k in meta), meta
        # Every span (the harness's readiness probes too) is one hit, tagged alike.
        spans = {svc: sum(1 for s in agent.spans() if s["service"] == svc) for svc in ("from-env", "shop")}
        assert spans["from-env"] >= N and spans["shop"] >= N, spans
        deadline = time.monotonic() + 15
        while (statsd.total("traefik_datadog.request.hits") < sum(spans.values())
               and time.monotonic() < deadline):
            time.sleep(0.2)
        assert statsd.total("traefik_datadog.request.hits", service="from-env", env="staging", version="2.0.1",
                            team="edge", region="eu-west-1", **{"http.status_code": "200"}) == spans["from-env"]
        assert statsd.total("traefik_datadog.request.hits", service="shop", env="staging",
                            team="edge", region="eu-west-1") == spans["shop"]
        assert statsd.total("traefik_datadog.request.hits") == sum(spans.values())
        # The entry left out is said at WARN (this Traefik logs at INFO).
        assert "traefik-datadog: DD_TAGS: 1 entries left out" in traefik.output()
    finally:
        relay.stop()
        statsd.close()
        agent.stop()
