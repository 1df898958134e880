"""The production topology as processes: Traefik + plugin -> (pipe | log) -> relay -> test agent + DogStatsD."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from datadog import Relay, StatsdListener, TestAgent
from harness import DD_CONFIG, NET_MODULE_NAME, NET_PLUGIN_DIR, READY_PREFIX, Route, Traefik, free_udp_port

FIFO_NAME = "traefik-datadog.fifo"
GUEST_DIR = "/run/dd"


@dataclass
class Pipeline:
    agent: TestAgent
    statsd: StatsdListener
    relay: Relay
    traefik: Traefik
    fifo: Path

    def spans(self, prefix: str = "/load/") -> dict[str, list[dict[str, Any]]]:
        """Spans the agent accepted, by request path (from http.url), readiness probes left out."""
        out: dict[str, list[dict[str, Any]]] = {}
        for s in self.agent.spans():
            url = s.get("meta", {}).get("http.url", "")
            path = "/" + url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url
            if path.startswith(prefix):
                out.setdefault(path, []).append(s)
        return out

    def wait_spans(self, paths: set[str], timeout: float) -> dict[str, list[dict[str, Any]]]:
        # Each poll makes the test agent encode every span it holds, on the CPU it needs to take
        # in the rest: polls start at 100 ms apart and slow down to 1 s.
        deadline = time.monotonic() + timeout
        pause = 0.1
        while True:
            got = self.spans()
            if paths <= got.keys() or time.monotonic() > deadline:
                return got
            time.sleep(pause)
            pause = min(1.0, pause * 1.5)


def relay_args(agent: TestAgent, statsd: StatsdListener, *inputs: str) -> list[str]:
    return [*inputs, "--agent-url", agent.url, "--dogstatsd-url", statsd.url]


def relay_env(**extra: str) -> dict[str, str]:
    """This process's environment without any Datadog variable (DD_*) or relay variable, plus
    ``extra``: what a test that is about those variables starts the relay with."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DD_") and not k.startswith("TRAEFIK_DATADOG_RELAY_")}
    return {**env, **extra}


def start_pipe_pipeline(tmp: Path, traefik_factory: Callable[..., Traefik], *,
                        plugin: dict[str, Any] | None = None, relay_extra: list[str] | None = None,
                        routes: list[Route] | None = None, env: dict[str, str] | None = None,
                        agent: TestAgent | None = None, statsd: StatsdListener | None = None,
                        discover: bool = False) -> Pipeline:
    """Relay on a FIFO in <tmp>/run, mounted at /run/dd; Traefik with route `web` through the
    middleware `dd` (or ``routes``). ``env``: the relay's environment; ``agent``/``statsd``: started
    stand-ins to use; ``discover``: no --agent-url/--dogstatsd-url (the relay finds them itself)."""
    agent = agent or TestAgent(tmp / "agent").start()
    statsd = statsd or StatsdListener()
    run_dir = tmp / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    fifo = run_dir / FIFO_NAME
    args = ["--pipe", str(fifo)] if discover else relay_args(agent, statsd, "--pipe", str(fifo))
    relay = Relay(tmp / "relay", args + list(relay_extra or []), env=env).start()
    deadline = time.monotonic() + 10
    while not fifo.exists():
        assert time.monotonic() < deadline, f"relay did not create {fifo}: {relay.log()}"
        time.sleep(0.05)
    conf = {**DD_CONFIG, "mode": "pipe", "pipePath": f"{GUEST_DIR}/{FIFO_NAME}", **(plugin or {})}
    traefik = traefik_factory(middlewares={"dd": conf}, routes=routes or [Route("web", ["dd"])],
                              mounts=[f"{run_dir}:{GUEST_DIR}"])
    return Pipeline(agent, statsd, relay, traefik, fifo)


def start_log_pipeline(tmp: Path, traefik_factory: Callable[..., Traefik], *, log_format: str = "json",
                       plugin: dict[str, Any] | None = None) -> Pipeline:
    """Traefik's stdout piped into `relay --stdin`; the relay's stdout (everything else) to a file."""
    agent = TestAgent(tmp / "agent").start()
    statsd = StatsdListener()
    conf = {**DD_CONFIG, "mode": "log", **(plugin or {})}
    traefik = traefik_factory(middlewares={"dd": conf}, routes=[Route("web", ["dd"])], log_format=log_format,
                              pipe_output=True)
    assert traefik.proc is not None and traefik.proc.stdout is not None
    relay = Relay(tmp / "relay", relay_args(agent, statsd, "--stdin"), stdin=traefik.proc.stdout,
                  stdout_path=traefik.log_path).start()
    return Pipeline(agent, statsd, relay, traefik, Path())


def network_config(statsd_port: int, relay_port: int, **extra: Any) -> dict[str, Any]:
    """The plugin configuration of network mode: DogStatsD to 127.0.0.1:<statsd_port>, span frames
    to the relay's --udp input at 127.0.0.1:<relay_port>."""
    return {**DD_CONFIG, "mode": "network", "agentHost": "127.0.0.1", "statsdPort": statsd_port,
            "relayAddress": f"127.0.0.1:{relay_port}", **extra}


def start_network_pipeline(tmp: Path, traefik_factory: Callable[..., Traefik], *,
                           plugin: dict[str, Any] | None = None, relay_extra: list[str] | None = None,
                           start_relay: bool = True, **traefik_extra: Any) -> Pipeline:
    """Traefik + plugin-net.wasm (moduleName traefik-datadog-plugin-net) in `mode: network`:
    DogStatsD lines straight to the StatsdListener, a CRC-checked frame per request to
    `relay --udp` (which sends spans to the test agent and the metrics of records whose DogStatsD
    did not go out). With ``start_relay=False`` the relay is built but not started (nobody listens
    on its port). `fifo` is unused (Path())."""
    agent = TestAgent(tmp / "agent").start()
    statsd = StatsdListener()
    udp_port = free_udp_port()
    relay = Relay(tmp / "relay", relay_args(agent, statsd, "--udp", f"127.0.0.1:{udp_port}") + list(relay_extra or []))
    if start_relay:
        relay.start()
        relay.wait_log("udp: listening on")
    conf = network_config(statsd.port, udp_port, **(plugin or {}))
    traefik = traefik_factory(middlewares={"dd": conf}, routes=[Route("web", ["dd"])],
                              plugin_dir=NET_PLUGIN_DIR, module_name=NET_MODULE_NAME, **traefik_extra)
    return Pipeline(agent, statsd, relay, traefik, Path())


__all__ = ["Pipeline", "relay_env", "start_pipe_pipeline", "start_log_pipeline", "start_network_pipeline", "network_config",
           "READY_PREFIX"]
