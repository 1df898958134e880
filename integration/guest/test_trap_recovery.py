"""An aborted call never poisons an instance: after a trap, ours or the host's, the instance resets
its per-request state and records every later request exactly once, says so once at ERROR
(Traefik's default level), and the relay counts the recoveries.

A trap leaves an instance in Traefik's pool as it was at the trap: memory, globals, the shadow
stack pointer. The guest marks each call's entry and return and resets what an unfinished call
left (``src/guest/call.rs``); the post-link step makes the exported handlers reset the stack
pointer (each trap here leaves ~11 KiB of stack in use: the 96 KiB stack would be gone after nine).

The traps come from the fault-injection build (``make build-fault``, never released): a request
with ``X-Traefik-Datadog-Fault: request`` traps in ``handle_request``, ``response`` in
``handle_response``. Deployed topology: pipe mode, the relay on the FIFO, the test agent, Traefik
at its default log level, one Go thread (``GOMAXPROCS=1``) so that the trapped instance is the one
its pool hands out next.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
import requests

from conftest import TraefikFactory
from datadog import Relay, StatsdListener, TestAgent
from deployed import deployed_relay, plugin_config
from harness import REPO_DIR, Route, find_plugin_dir
from pipeline import FIFO_NAME, GUEST_DIR

# $FAULT_PLUGIN_DIR: another fault build (an unlowered one shows what the stack pointer reset does:
# its tenth trap in a row leaves the instance answering 500 for good).
FAULT_PLUGIN_DIR = Path(os.environ.get("FAULT_PLUGIN_DIR")
                        or REPO_DIR / "build" / "fault" / "plugins-local" / "src" / "traefik-datadog-plugin")
FAULT = "X-Traefik-Datadog-Fault"
SAID = "was aborted before it returned (a trap)"
PLAIN = 200


def get(url: str, fault: str | None = None) -> int | None:
    """The status, or None when Traefik closed the connection without one (a trap in
    ``handle_response`` panics into Traefik's recovery, which aborts the response)."""
    headers = {FAULT: fault} if fault else {}
    try:
        return requests.get(url, headers=headers, timeout=30).status_code
    except requests.ConnectionError:
        return None


def test_every_request_after_a_trap_is_recorded_once(traefik_factory: TraefikFactory, tmp_path: Path) -> None:
    agent = TestAgent(tmp_path / "agent").start()
    statsd = StatsdListener()
    (tmp_path / "run").mkdir()
    relay: Relay | None = None
    try:
        relay = deployed_relay(tmp_path, agent, statsd).start()
        fifo = tmp_path / "run" / FIFO_NAME
        deadline = time.monotonic() + 10
        while not fifo.exists():
            assert time.monotonic() < deadline, relay.log()
            time.sleep(0.05)
        t = traefik_factory(middlewares={"dd": plugin_config()}, routes=[Route("web", ["dd"])],
                            mounts=[f"{tmp_path / 'run'}:{GUEST_DIR}"], log_level=None,
                            plugin_dir=find_plugin_dir(FAULT_PLUGIN_DIR), env={"GOMAXPROCS": "1"})
        url = t.url("web")
        sent: list[str] = []
        faults: dict[str, int] = {}

        def plain(n: int, tag: str) -> None:
            for i in range(n):
                path = f"/load/{tag}/{i}"
                assert get(url + path) == 200, path
                sent.append(path)

        # One trap on each side, then ten request-side traps in a row: without the stack
        # pointer reset the instance would have run out of stack.
        for step, fault in enumerate(["request", "response"] + ["request"] * 10):
            faults[f"/load/fault{step}"] = get(f"{url}/load/fault{step}", fault)
            plain(PLAIN if step < 2 or step == 11 else 1, f"after{step}")
        print(f"\nfaulted requests answered {faults}; "
              f"{len(sent)} plain requests answered 200")

        spans: dict[str, list] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            spans = {}
            for s in agent.spans():
                m = re.search(r"://[^/]*(/load/[^?]*)", s.get("meta", {}).get("http.url", ""))
                if m:
                    spans.setdefault(m.group(1), []).append(s)
            if set(sent) <= spans.keys():
                break
            time.sleep(0.5)
        time.sleep(3)  # a late duplicate would show
        counts = {p: len(spans.get(p, [])) for p in sent}
        assert counts == {p: 1 for p in sent}
        # The trapped requests themselves leave no span (the call that records them never ended).
        assert {p: len(spans.get(p, [])) for p in faults} == {p: 0 for p in faults}
        assert t.proc is not None and t.proc.poll() is None

        relay.stop()
        recovered = relay.counters().get("plugin_recovered_calls")
        said = t.output().count(SAID)
        print(f"relay plugin_recovered_calls={recovered}; Traefik said it {said} time(s)")
        # Every trap was met by the next call on the same instance, which said it once.
        assert recovered == len(faults)
        assert said == 1
    finally:
        if relay is not None:
            relay.stop()
        agent.stop()
        statsd.close()


def test_the_released_modules_ignore_the_fault_header(traefik_factory: TraefikFactory) -> None:
    """The header traps only the fault-injection build."""
    t = traefik_factory()
    for fault in ("request", "response"):
        assert get(f"{t.url('web')}/load/f", fault) == 200
    assert t.proc is not None and t.proc.poll() is None


@pytest.fixture(autouse=True)
def _fault_build_exists() -> None:
    if not (FAULT_PLUGIN_DIR / "plugin.wasm").is_file():
        pytest.fail(f"{FAULT_PLUGIN_DIR} not built: make build-fault")
