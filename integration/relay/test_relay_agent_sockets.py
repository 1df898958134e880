"""The relay finds the agent the way Datadog's clients do: with no --agent-url/--dogstatsd-url and no
DD_* variable, it uses the agent's Unix sockets when they exist (`apm.socket`, `dsd.socket` in
/var/run/datadog/, moved here by TRAEFIK_DATADOG_RELAY_SOCKET_DIR): the official test agent listens on
`--trace-uds-socket`, DogStatsD is a Unix datagram socket. Requests through the real Traefik (pipe
mode) become exactly N spans and N hits over the sockets, and the relay says at start which address it
chose and why. The order of the other rungs is unit-tested (relay/src/discovery.rs)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import load
from datadog import StatsdListener, TestAgent
from pipeline import relay_env, start_pipe_pipeline

N = 200
METRIC = "traefik_datadog.request"


def test_no_setting_finds_the_agent_sockets(tmp_path: Path, traefik_factory: Any) -> None:
    # A short directory: a socket path must fit in 108 bytes.
    sockets = Path(f"/tmp/tdp-sock-{tmp_path.name[-12:]}")
    sockets.mkdir(exist_ok=True)
    agent = TestAgent(tmp_path / "agent", uds=sockets / "apm.socket").start()
    statsd = StatsdListener(unix=sockets / "dsd.socket")
    p = start_pipe_pipeline(tmp_path, traefik_factory, agent=agent, statsd=statsd, discover=True,
                            env=relay_env(TRAEFIK_DATADOG_RELAY_SOCKET_DIR=str(sockets)),
                            relay_extra=["--flush-interval", "200ms"])
    try:
        p.relay.wait_log(f"spans to unix://{sockets}/apm.socket (the agent's socket exists)")
        p.relay.wait_log(f"metrics to unix://{sockets}/dsd.socket (the agent's socket exists;")
        planned = load.plan(N)
        result = load.run(p.traefik.port("web"), planned, concurrency=8)
        assert result.sent == N and not result.errors and not result.wrong, (result.errors[:3], result.wrong[:3])
        paths = {r.path for r in planned}
        got = p.wait_spans(paths, timeout=120)
        assert got.keys() == paths, f"{len(paths - got.keys())} spans missing"
        assert all(len(v) == 1 for v in got.values())
        hosts = ("a.test", "b.test", "c.test")

        def hits() -> float:
            return sum(statsd.total(f"{METRIC}.hits", resource=h) for h in hosts)

        deadline = time.monotonic() + 60
        while hits() < N and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.5)  # one more metrics interval: nothing beyond N may arrive
        assert hits() == N
        assert statsd.malformed == []
        # Over the socket, the relay's client names no host but `localhost`.
        urls = {r["url"] for r in agent.requests()}
        assert urls == {"http://localhost/v0.4/traces"}, urls
        assert agent.check_failures() == ""
        print(f"{N} requests -> {len(got)} spans over {sockets}/apm.socket, {hits():.0f} hits over dsd.socket")
    finally:
        p.traefik.stop()
        p.relay.stop()
        statsd.close()
        agent.stop()
        for s in sockets.iterdir():
            s.unlink()
        sockets.rmdir()
