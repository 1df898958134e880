"""The decision made at the agent's rate travels to the backend: with the test agent answering 0.5
for the plugin's service, a ddtrace-instrumented backend behind Traefik keeps exactly the traces the
plugin keeps (priority 1, `_dd.p.dm=-1` received and reported) and drops the ones it drops
(priority 0, no `_dd.p.dm`), in the same trace, as the plugin span's child; both spans of every
request arrive."""

from __future__ import annotations

import time
from pathlib import Path

import requests

from sampling import CHECK_EVERY_S, OWN_KEY, keeps, sleep_until, start

N = 60
RATES = {OWN_KEY: 0.5, "service:,env:": 1.0}


def test_backend_keeps_and_drops_with_the_plugin(tmp_path: Path) -> None:
    s = start(tmp_path, "traced", RATES)
    try:
        sleep_until(s.wait_rates(RATES) + CHECK_EVERY_S + 0.1)
        echoes = {}
        for n in range(N):
            r = requests.get(s.traefik.url("web") + f"/follow/{n}", headers={"Host": "a.test"}, timeout=10)
            assert r.status_code == 200 and r.headers.get("X-Backend") == "1", r.text
            echoes[f"/follow/{n}"] = r.json()
        deadline = time.monotonic() + 60
        while True:
            spans = s.agent.spans()
            plugin = {sp["trace_id"]: sp for sp in spans
                      if sp["service"] == "edge" and "/follow/" in sp["meta"].get("http.url", "")}
            backend = {sp["trace_id"]: sp for sp in spans if sp["service"] == "backend"}
            if (len(plugin) == N and plugin.keys() <= backend.keys()) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert len(plugin) == N and plugin.keys() <= backend.keys(), (len(plugin), len(plugin.keys() & backend.keys()))
        kept = 0
        for tid, p in plugin.items():
            b = backend[tid]
            keep = keeps(tid, 0.5)
            prio = 1.0 if keep else 0.0
            assert p["metrics"]["_sampling_priority_v1"] == prio and p["metrics"]["_dd.agent_psr"] == 0.5, p
            assert p["meta"]["_dd.p.dm"] == "-1", p
            assert b["parent_id"] == p["span_id"], (p, b)
            assert b["metrics"].get("_sampling_priority_v1") == prio, (p, b)
            assert b["meta"].get("_dd.p.dm") == ("-1" if keep else None), (p, b)
            echo = echoes["/follow/" + p["meta"]["http.url"].rsplit("/follow/", 1)[1]]
            assert echo["span"]["sampling_priority"] == int(prio), echo
            assert echo["headers"]["x-datadog-sampling-priority"] == str(int(prio)), echo
            kept += keep
        assert 0 < kept < N
        print(f"agent rate 0.5: plugin and ddtrace backend kept the same {kept} of {N} traces")
    finally:
        s.stop()
