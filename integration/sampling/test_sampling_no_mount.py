"""Where no directory is mounted (log mode read by `relay --stdin`, network mode with
plugin-net.wasm) the agent's rates cannot reach the plugin: Traefik's log says so (a warning from
each instance as it starts), the relay says it publishes nothing, and traces are decided by what is
configured — here nothing, so each is kept by the default mechanism (priority 1, `_dd.p.dm=-0`), and
every span arrives."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pipeline import start_log_pipeline, start_network_pipeline

N = 20
NOTICE = ("traefik-datadog: mode \\\"{mode}\\\" has no mounted directory, so the agent's sampling rates do not "
          "reach the plugin: traces matching no samplingRules are kept (rate 1); set sampleRate to sample them")
RELAY_NOTICE = "the agent's sampling rates are not published (no --pipe or --publish-dir)"


@pytest.mark.parametrize("mode", ["log", "network"])
def test_without_a_mount_the_configured_rate_applies_and_it_is_said(mode: str, tmp_path: Path,
                                                                     traefik_factory: Any) -> None:
    start = start_log_pipeline if mode == "log" else start_network_pipeline
    p = start(tmp_path, traefik_factory)
    try:
        import requests

        for n in range(N):
            r = requests.get(p.traefik.url("web") + f"/load/{n}", headers={"Host": "a.test"}, timeout=10)
            assert r.status_code == 200
        paths = {f"/load/{n}" for n in range(N)}
        got = p.wait_spans(paths, timeout=30)
        assert got.keys() >= paths
        for path in paths:
            (sp,) = got[path]
            assert (sp["metrics"]["_sampling_priority_v1"], sp["meta"]["_dd.p.dm"]) == (1.0, "-0"), sp
            assert "_dd.agent_psr" not in sp["metrics"] and "_dd.rule_psr" not in sp["metrics"], sp
        deadline = time.monotonic() + 10
        while NOTICE.format(mode=mode) not in p.traefik.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert NOTICE.format(mode=mode) in p.traefik.output(), p.traefik.output_tail(20)
        assert RELAY_NOTICE in p.relay.log()
    finally:
        p.relay.stop()
        p.statsd.close()
        p.agent.stop()
