"""Network mode while the relay and the agent are down: for the whole run, and going away mid-run.

Real Traefik 3.7.15 + plugin-net.wasm (`mode: network`). "Down" means nothing listens on the relay's
UDP port nor on the DogStatsD port (the agent's), and the test agent is stopped.

- Clients never notice: 0 errors, 0 changed responses, no guest trap.
- No record is dropped silently (README, "How it works"): with the relay down every request is
  written as exactly one fallback line; when it goes away mid-run every request is a span at the
  agent or a fallback line, except at most the datagrams in flight at the moment of the stop.
  (Fails with plugin-net.wasm of 7bae6a1: a connected UDP socket reports the ICMP "port
  unreachable" of one datagram as ECONNREFUSED on the NEXT send, so sends to a closed port
  alternate "ok" (datagram gone, record lost) and ECONNREFUSED (that record falls back): 50% of
  the records are lost while the relay is down.)
- Latency: client p99 with everything down stays within a bound of the healthy p99, measured with
  wrk against a native backend (examples/bench_backend.rs, so the Python backend's noise does not
  hide the plugin's cost) in interleaved rounds on the same Traefik, median of the rounds.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import statistics
import subprocess
import threading
import time
from collections import Counter
from typing import Any, Iterator

import pytest
import requests

import load
from datadog import Relay
from harness import (NET_MODULE_NAME, NET_PLUGIN_DIR, REPO_DIR, Route, Traefik,
                     free_port, free_udp_port)
from lines import messages
from pipeline import network_config, start_network_pipeline

TRAP_RE = re.compile(r"wasm error|\btrap|panic|unreachable", re.IGNORECASE)
BENCH_BACKEND = REPO_DIR / "target" / "release" / "examples" / "bench_backend"

# Latency: wrk -t2 -c<CONNS>, ROUNDS x (healthy, down, stopping mid-round) of ROUND_S
# seconds each, interleaved.
CONNS = 16
ROUNDS = 5
ROUND_S = 3
# The goal is 1 ms. Measured on the 2-core box (wrk, Traefik and the backend on the same 2 cores,
# other test runs alongside): healthy p99 ~2-4 ms, and the spread of p99 between rounds of the SAME
# condition is itself up to ~1-2 ms. The assertion allows the goal plus that noise: 2 ms, or 50% of
# the healthy p99, or the healthy rounds' own spread in this run (their worst p99 above their
# median), whichever is larger. On a machine busy with other work a healthy round's p99 was seen at
# 818 ms: the bound then follows the noise the same run measured with nothing down, and stays at
# 2 ms on a quiet one. The measured numbers are printed.
P99_GOAL_MS = 1.0
P99_BOUND_MS = 2.0
P99_BOUND_RATIO = 0.5


@pytest.fixture(scope="module")
def wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
        path = shutil.which("wrk")
    assert path, "wrk could not be installed"
    return path


@pytest.fixture(scope="module")
def bench_backend() -> Iterator[str]:
    if not BENCH_BACKEND.is_file():
        subprocess.run(["cargo", "build", "--release", "--example", "bench_backend"], cwd=REPO_DIR, check=True)
    port = free_port()
    proc = subprocess.Popen([str(BENCH_BACKEND), f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            assert time.monotonic() < deadline, "bench_backend did not start"
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(5)


class UdpSink:
    """A UDP port that can be taken down and brought back on the same port number (DogStatsD). Up, it
    is bound but not read (``read=False``): senders see a listening port and the kernel discards
    what does not fit, at no CPU cost to the 2 cores being measured."""

    def __init__(self, port: int, read: bool = False):
        self.port = port
        self.read = read
        self.received = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def up(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.bind(("127.0.0.1", self.port))
        s.settimeout(0.2)
        self._sock = s
        if self.read:
            self._thread = threading.Thread(target=self._drain, args=(s,), daemon=True)
            self._thread.start()

    def _drain(self, s: socket.socket) -> None:
        while self._sock is s:
            try:
                s.recv(65535)
                self.received += 1
            except socket.timeout:
                continue
            except OSError:
                return

    def down(self) -> None:
        s, self._sock = self._sock, None
        if s is not None:
            s.close()
        if self._thread is not None:
            self._thread.join(2)


class FastBackend:
    """What harness.Traefik needs of a backend: its URL."""

    def __init__(self, url: str):
        self.url = url


class BenchTraefik(Traefik):
    """Traefik in front of bench_backend, which sends no X-Backend header: ready on any 200."""

    def _is_ready(self, r: requests.Response) -> bool:
        return r.status_code == 200


def run_wrk(wrk_bin: str, port: int, seconds: int, conns: int = CONNS) -> dict[str, Any]:
    out = subprocess.run([wrk_bin, "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", "-H", "Host: a.test",
                          f"http://127.0.0.1:{port}/lat"], capture_output=True, text=True, check=True,
                         timeout=seconds + 30).stdout

    def ms(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\b", out, re.M)
        assert m, out
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    requests_done = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {"p50": ms("50"), "p99": ms("99"), "requests": int(requests_done.group(1)) if requests_done else 0,
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": sock.group(1) if sock else "",
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}


def traps(t: Traefik) -> list[str]:
    return [line[:300] for line in t.output().splitlines() if TRAP_RE.search(line)]


def check_fallback_lines(t: Traefik, planned: list[load.Planned]) -> tuple[list[str], list[str]]:
    """(paths of `planned` without a fallback line, problems: repeated or wrong lines)."""
    want = {r.path: r for r in planned}
    got = Counter()
    problems = []
    for rec in t.records():
        path = str(rec.data.get("RequestPath"))
        got[path] += 1
        req = want.get(path)
        if req is None:
            problems.append(f"fallback line for a path nobody requested: {path}")
            continue
        seen = (rec.data.get("RequestHost"), rec.data.get("RequestMethod"), rec.data.get("DownstreamStatus"))
        if seen != (req.host, req.method, req.status):
            problems.append(f"{path}: {seen} != {(req.host, req.method, req.status)}")
    problems += [f"{p}: {n} fallback lines" for p, n in got.items() if n > 1]
    return sorted(set(want) - set(got)), problems


def test_relay_and_agent_down_whole_run(tmp_path, traefik_factory) -> None:
    """Nothing listens on the relay's nor the DogStatsD port: every request becomes one fallback line,
    except at most one per instance: a connected UDP socket learns "nobody listens" only on the send
    after the refused one, and instances share sockets (to bound Traefik's fd leak), so a sibling can
    take the refusal meant for another instance's datagram. Without receive or getsockopt imports
    (both touch more unlocked host state) that datagram cannot be told apart: it is lost uncounted."""
    p = start_network_pipeline(tmp_path, traefik_factory, start_relay=False)
    p.statsd.close()
    p.agent.stop()
    n = 5000
    planned = load.plan(n)
    result = load.run(p.traefik.port("web"), planned, 32)
    assert result.errors == [], result.errors[:5]
    assert result.wrong == [], result.wrong[:5]
    assert traps(p.traefik) == []
    time.sleep(0.5)
    missing, problems = check_fallback_lines(p.traefik, planned)
    assert problems == [], problems[:10]
    # Said at ERROR, once per instance: the records go out as INFO lines, which Traefik's default
    # level would drop (each of the 32 concurrent instances, and replacements for the ones collected).
    said = [(lvl, m) for lvl, m in messages(p.traefik.output())
            if m.startswith("traefik-datadog: a record could not be sent over UDP to the relay at 127.0.0.1:")]
    print(f"down whole run: {n - len(missing)} fallback lines, {len(missing)} lost of {n}; "
          f"{len(said)} instances said the relay is away")
    assert said and {lvl for lvl, _ in said} == {"error"}, said[:3]
    assert len(said) <= 4 * 32, len(said)
    assert len(missing) <= 32, (
        f"{len(missing)} of {n} requests ({len(missing) / n:.1%}) left no fallback line while the relay was "
        f"down: more than one per concurrent instance (e.g. {missing[:5]})")


def test_relay_and_agent_stop_mid_run(tmp_path, traefik_factory) -> None:
    """Healthy, then relay, agent and DogStatsD stop while the load goes on: every request is a span or a
    fallback line, except at most the datagrams in flight when the relay stopped."""
    p = start_network_pipeline(tmp_path, traefik_factory, relay_extra=["--flush-interval", "200ms"])
    n, rate, concurrency = 8000, 2000.0, 32
    planned = load.plan(n)
    bg = load.Background(p.traefik.port("web"), planned, concurrency, rate=rate)
    time.sleep(n / rate / 2)
    assert p.relay.stop() == 0  # SIGTERM: the relay flushes what it holds to the agent, then exits
    stopped_at = time.monotonic()
    spans = p.spans()
    p.agent.stop()
    p.statsd.close()
    result = bg.join()
    assert result.errors == [], result.errors[:5]
    assert result.wrong == [], result.wrong[:5]
    assert traps(p.traefik) == []
    time.sleep(0.5)
    after = sum(1 for i in range(n) if result.started + i / rate > stopped_at)
    want = {r.path for r in planned}
    accepted = {k for k in spans if k in want}
    missing_fb, problems = check_fallback_lines(p.traefik, planned)
    assert problems == [], problems[:10]
    fallback = want - set(missing_fb)
    assert accepted & fallback == set(), f"both a span and a fallback line: {sorted(accepted & fallback)[:5]}"
    lost = sorted(want - accepted - fallback)
    counters = p.relay.counters()
    print(f"mid-run stop: {len(accepted)} spans, {len(fallback)} fallback lines, {len(lost)} lost; "
          f"~{after} requests after the stop; relay {counters}")
    # The relay reads what its socket holds before it closes it. Lost: the one datagram each instance
    # sends before an ICMP "port unreachable" tells it nobody listens. Instances learn that one by
    # one, and Traefik's sync.Pool replaces pooled instances at garbage collections (a new one knows
    # nothing), so the bound is the instances alive after the stop: the concurrency, and as many
    # again for replacements on a machine busy enough to collect often.
    assert len(lost) <= 2 * concurrency, (
        f"{len(lost)} of ~{after} requests after the relay stopped ({len(lost) / max(after, 1):.0%}) are neither a "
        f"span nor a fallback line (e.g. {lost[:5]}): dropped silently")


# A measurement, not a check: the down condition writes a fallback line per request, real work whose
# price grows with the machine's load, so the suite leaves it to `make bench`.
@pytest.mark.bench
def test_latency_p99_down_vs_healthy(tmp_path, wrk, bench_backend, capsys) -> None:
    """Healthy: the relay reads every frame (`--no-traces`: the Python test agent decoding ~8k spans/s
    would take the CPU the measured Traefik needs, and measure the test agent, not the plugin) and the
    DogStatsD port is bound. Down: neither port has a socket, so every send is refused."""
    statsd = UdpSink(free_udp_port())
    relay_port = free_udp_port()
    relay = Relay(tmp_path / "relay", ["--udp", f"127.0.0.1:{relay_port}", "--no-traces",
                                       "--dogstatsd-url", f"udp://127.0.0.1:{statsd.port}"])
    t = BenchTraefik(tmp_path / "traefik", FastBackend(bench_backend),  # type: ignore[arg-type]
                     routes=[Route("web", ["dd"])], middlewares={"dd": network_config(statsd.port, relay_port)},
                     plugin_dir=NET_PLUGIN_DIR, module_name=NET_MODULE_NAME)

    def healthy() -> None:
        statsd.up()
        relay.start()
        relay.wait_log("udp: listening on", timeout=10)

    def down() -> None:
        assert relay.stop(signal.SIGTERM) == 0
        statsd.down()

    results: dict[str, list[dict[str, Any]]] = {"healthy": [], "down": [], "stopping": []}
    try:
        healthy()
        t.start()
        run_wrk(wrk, t.port("web"), 2)  # warm-up: instances, sockets, connections
        state = "healthy"
        for _ in range(ROUNDS):
            for cond in ("healthy", "down", "stopping"):
                want_state = "down" if cond == "down" else "healthy"
                if want_state != state:
                    (healthy if want_state == "healthy" else down)()
                    state = want_state
                run_wrk(wrk, t.port("web"), 1)  # settle in the new state
                if cond != "stopping":
                    results[cond].append(run_wrk(wrk, t.port("web"), ROUND_S))
                    continue
                # The relay and DogStatsD go away in the middle of the measured round.
                box: dict[str, Any] = {}
                th = threading.Thread(target=lambda: box.update(run_wrk(wrk, t.port("web"), ROUND_S)))
                th.start()
                time.sleep(ROUND_S / 2)
                down()
                state = "down"
                th.join()
                results[cond].append(box)
        fallback_lines = len(t.records())
        out_traps = traps(t)
    finally:
        t.stop()
        relay.stop()
        statsd.down()

    assert out_traps == []
    med = {c: statistics.median(r["p99"] for r in rs) for c, rs in results.items()}
    p50 = {c: statistics.median(r["p50"] for r in rs) for c, rs in results.items()}
    rps = {c: statistics.median(r["rps"] for r in rs) for c, rs in results.items()}
    healthy_spread = max(r["p99"] for r in results["healthy"]) - med["healthy"]
    bound = max(P99_BOUND_MS, P99_BOUND_RATIO * med["healthy"], healthy_spread)
    with capsys.disabled():
        print(f"\nlatency wrk -t2 -c{CONNS}, {ROUNDS} rounds x (healthy, down, stopping mid-round) x {ROUND_S}s, "
              f"interleaved; goal {P99_GOAL_MS} ms, bound {bound:.2f} ms (healthy spread {healthy_spread:.2f} ms)")
        for c, rs in results.items():
            print(f"  {c:8s} p99 {[round(r['p99'], 2) for r in rs]} median {med[c]:.2f} ms "
                  f"(diff {med[c] - med['healthy']:+.2f} ms); p50 {p50[c]:.2f} ms; {rps[c]:.0f} req/s")
        print(f"  fallback lines in Traefik's output: {fallback_lines}")
    for c, rs in results.items():
        for r in rs:
            assert r["non2xx"] == 0 and r["socket_errors"] == "", (c, r)
    assert med["down"] - med["healthy"] <= bound, (med, results)
    assert med["stopping"] - med["healthy"] <= bound, (med, results)
