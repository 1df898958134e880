"""The relay's health endpoint (`--health-listen`), as the kubelet and monitoring see it:

- `/ready` follows the official test agent: 200 while it answers, 503 naming the failure once a
  payload has gone unanswered for `--unready-after` (2 s here, 60 s by default) after the agent was
  stopped, 200 again when an agent is back on its port; the spans of the requests sent through the
  real Traefik meanwhile are delivered then. `/live` stays 200 throughout (an agent outage is not
  cured by restarting the relay).
- `/live` turns 503 when an input ends while the relay runs on: the real Traefik's output piped into
  `relay --stdin --udp ...`, Traefik stopped, so stdin ends; the relay keeps running (its UDP input
  still works) and says which input stopped and why.
- Requests that are not a probe: an unknown path 404, another method 405, bytes that are not HTTP
  400, a head larger than the 4 KiB read 431 or closed, silent connections beyond the four answered
  at once closed; after each, `/live` answers 200 again.
"""

from __future__ import annotations

import http.client
import socket
import time
from pathlib import Path
from typing import Any

import load
from datadog import Relay, StatsdListener, TestAgent
from harness import DD_CONFIG, Route, free_port, free_udp_port
from pipeline import relay_args, start_pipe_pipeline

PATIENCE = 60.0  # generous: the machine may be busy; nothing here is timed


def get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def wait_for(port: int, path: str, status: int, timeout: float = PATIENCE) -> str:
    """Polls `path` until it answers `status`; returns the body."""
    deadline = time.monotonic() + timeout
    last: tuple[int, str] | str = ""
    while time.monotonic() < deadline:
        try:
            last = get(port, path)
            if last[0] == status:
                return last[1]
        except OSError as e:
            last = repr(e)
        time.sleep(0.1)
    raise AssertionError(f"{path} did not answer {status} within {timeout}s; last: {last!r}")


def raw(port: int, data: bytes) -> bytes:
    """Sends `data` and reads until the relay closes; b"" when it closed without an answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(data)
        except OSError:
            pass  # closed before all was sent: the answer, if any, is read below
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        return out


def test_ready_follows_the_agent(tmp_path: Path, traefik_factory: Any) -> None:
    hport = free_port()
    p = start_pipe_pipeline(tmp_path, traefik_factory, relay_extra=[
        "--health-listen", f"127.0.0.1:{hport}", "--unready-after", "2s", "--flush-interval", "200ms"])
    agent = p.agent
    try:
        p.relay.wait_log(f"health: answering GET /live and /ready on http://127.0.0.1:{hport}")
        status, body = get(hport, "/ready")  # Traefik's readiness requests may have been sent already
        assert status == 200 and body.startswith("ok: "), body
        first = load.plan(20)
        result = load.run(p.traefik.port("web"), first, concurrency=4)
        assert result.sent == 20 and not result.errors and not result.wrong
        assert p.wait_spans({r.path for r in first}, timeout=PATIENCE).keys() == {r.path for r in first}
        assert wait_for(hport, "/ready", 200).startswith("ok: the agent answered ")

        agent.stop()
        during = load.plan(20, start=20)
        result = load.run(p.traefik.port("web"), during, concurrency=4)
        assert result.sent == 20 and not result.errors and not result.wrong, "the outage reaches no client"
        body = wait_for(hport, "/ready", 503)
        assert body.startswith("the agent has not answered for "), body
        assert "connect" in body, f"the failure is named: {body}"
        status, live = get(hport, "/live")
        assert status == 200 and live.startswith("ok: "), live

        # An agent back on the same port: the held payloads go out and /ready is 200 again.
        agent = TestAgent(tmp_path / "agent-again", port=p.agent.port).start()
        p.agent = agent
        assert wait_for(hport, "/ready", 200).startswith("ok: the agent answered ")
        paths = {r.path for r in during}
        got = p.wait_spans(paths, timeout=PATIENCE)
        assert got.keys() == paths, f"{len(paths - got.keys())} spans of the outage missing"
        print(f"/ready: 503 \"{body.strip()}\", then 200 with the agent back; {len(got)} held spans delivered")
    finally:
        p.traefik.stop()
        p.relay.stop()
        p.statsd.close()
        agent.stop()


def test_live_turns_503_when_an_input_ends(tmp_path: Path, traefik_factory: Any) -> None:
    hport = free_port()
    agent = TestAgent(tmp_path / "agent").start()
    statsd = StatsdListener()
    traefik = traefik_factory(middlewares={"dd": {**DD_CONFIG, "mode": "log"}}, routes=[Route("web", ["dd"])],
                              log_format="json", pipe_output=True)
    assert traefik.proc is not None and traefik.proc.stdout is not None
    udp = free_udp_port()
    relay = Relay(tmp_path / "relay",
                  relay_args(agent, statsd, "--stdin", "--udp", f"127.0.0.1:{udp}")
                  + ["--health-listen", f"127.0.0.1:{hport}", "--flush-interval", "200ms"],
                  stdin=traefik.proc.stdout, stdout_path=traefik.log_path).start()
    try:
        relay.wait_log("health: answering")
        body = wait_for(hport, "/live", 200)
        for name in ("input stdin", "input udp", "trace sender"):
            assert name in body, body
        planned = load.plan(10)
        result = load.run(traefik.port("web"), planned, concurrency=2)
        assert result.sent == 10 and not result.errors and not result.wrong
        deadline = time.monotonic() + PATIENCE
        while len([s for s in agent.spans() if "/load/" in s.get("meta", {}).get("http.url", "")]) < 10:
            assert time.monotonic() < deadline, "the records on stdin did not become spans"
            time.sleep(0.2)

        traefik.stop()  # its output, the relay's stdin, ends
        body = wait_for(hport, "/live", 503)
        assert body == "input stdin stopped: end of input (Traefik's output closed)\n", body
        assert relay.proc is not None and relay.proc.poll() is None, "the relay runs on (its UDP input)"
        assert get(hport, "/ready")[0] == 200, "the agent still answers"
        print(f"/live after Traefik stopped: 503 {body.strip()!r}")
    finally:
        traefik.stop()
        assert relay.stop() == 0
        statsd.close()
        agent.stop()


def test_requests_that_are_not_probes(tmp_path: Path) -> None:
    hport = free_port()
    agent = TestAgent(tmp_path / "agent").start()
    statsd = StatsdListener()
    relay = Relay(tmp_path / "relay", relay_args(agent, statsd, "--udp", f"127.0.0.1:{free_udp_port()}")
                  + ["--health-listen", f"127.0.0.1:{hport}"]).start()

    def still_live() -> None:
        assert wait_for(hport, "/live", 200).startswith("ok: ")

    try:
        relay.wait_log("health: answering")
        still_live()
        assert get(hport, "/metrics") == (404, "GET /live or /ready\n")
        still_live()
        assert get(hport, "/live", method="POST") == (405, "GET /live or /ready\n")
        still_live()
        answer = raw(hport, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")  # a TLS hello
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer[:80]
        still_live()
        answer = raw(hport, b"GET /live HTTP/1.1\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n")
        assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:80]
        still_live()
        answer = raw(hport, b"\x00" * 1_000_000)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:80]
        still_live()
        # Silent clients: four are waited for (1 s each), more are closed unanswered.
        silent = [socket.create_connection(("127.0.0.1", hport), timeout=10) for _ in range(8)]
        try:
            still_live()  # once the silent ones timed out, probes are answered again
        finally:
            for s in silent:
                s.close()
        assert relay.proc is not None and relay.proc.poll() is None
    finally:
        assert relay.stop() == 0
        statsd.close()
        agent.stop()
