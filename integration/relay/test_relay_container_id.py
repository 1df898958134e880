"""The relay names its container to the agent like Datadog's clients, so the agent can add the pod's
tags: with a cgroup file the test controls (TRAEFIK_DATADOG_RELAY_CGROUP_FILE, a cgroup v1 Kubernetes
pod's, testdata/cgroup/v1-kubepods) and DD_EXTERNAL_ENV as Datadog's admission controller injects
it, every /v0.4/traces request the official test agent received carries `Datadog-Container-ID`,
`Datadog-Entity-ID: ci-<id>` and `Datadog-External-Env`, and every DogStatsD line (request metrics
and the relay's own) ends with `|c:<id>|e:<external env>`. DD_TAGS rides along: on every span and
every metric line, never over the span's own tags (the Middleware's env stays)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import load
from harness import REPO_DIR
from pipeline import relay_env, start_pipe_pipeline

N = 50
CID = "7b8952daecf4c0e44bbcefe1b5c5ebc7b4839d4eefeccefe694709d3809b6199"
EXTERNAL = "it-false,cn-relay,pu-3d274242-8ee0-11e9-a8a6-1e68d864ef1a"


def test_container_id_on_every_request_and_line(tmp_path: Path, traefik_factory: Any) -> None:
    cgroup = REPO_DIR / "testdata" / "cgroup"
    env = relay_env(TRAEFIK_DATADOG_RELAY_CGROUP_FILE=str(cgroup / "v1-kubepods"),
                    TRAEFIK_DATADOG_RELAY_MOUNTINFO_FILE=str(cgroup / "garbage"),
                    DD_EXTERNAL_ENV=EXTERNAL, DD_TAGS="team:edge-platform, env:ignored-by-span")
    p = start_pipe_pipeline(tmp_path, traefik_factory, env=env, relay_extra=["--flush-interval", "200ms"])
    try:
        p.relay.wait_log(f"container {CID}")
        planned = load.plan(N)
        result = load.run(p.traefik.port("web"), planned, concurrency=4)
        assert result.sent == N and not result.errors and not result.wrong
        paths = {r.path for r in planned}
        got = p.wait_spans(paths, timeout=60)
        assert got.keys() == paths
        for spans in got.values():
            assert spans[0]["meta"]["team"] == "edge-platform", spans[0]["meta"]
            assert spans[0]["meta"]["env"] == "test", "the Middleware's env wins"
        reqs = p.agent.requests()
        assert reqs, "no trace request recorded"
        for r in reqs:
            h = {k.lower(): v for k, v in r["headers"].items()}
            assert h.get("datadog-container-id") == CID, h
            assert h.get("datadog-entity-id") == f"ci-{CID}", h
            assert h.get("datadog-external-env") == EXTERNAL, h
        def hits() -> float:  # the load's hosts (readiness probes apart)
            return sum(p.statsd.total("traefik_datadog.request.hits", resource=h, team="edge-platform")
                       for h in ("a.test", "b.test", "c.test"))

        deadline = time.monotonic() + 30
        while hits() < N and time.monotonic() < deadline:
            time.sleep(0.2)
        assert hits() == N
        assert p.statsd.malformed == []
        lines = list(p.statsd.metrics)
        assert lines and all(m.container == CID and m.external_env == EXTERNAL for m in lines), \
            [m for m in lines if m.container != CID][:3]
        assert all(m.tags.get("team") == "edge-platform" for m in lines)
        print(f"{len(reqs)} trace requests and {len(lines)} DogStatsD lines, each naming container {CID[:12]}")
    finally:
        p.traefik.stop()
        p.relay.stop()
        p.statsd.close()
        p.agent.stop()
