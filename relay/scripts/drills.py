#!/usr/bin/env python3
"""Failure drills for traefik-datadog-relay, each checking exact accounting.

1. agent-down-then-up: spans wait in the buffer, are retried, all arrive.
2. buffer-cap: agent down, more spans than --max-buffered-spans: sent + dropped == received.
   memory-agent-down: the same with the defaults (byte cap): peak RSS stays under 30 MiB.
3. sigterm-agent-down: SIGTERM while the agent is down exits 0 within --shutdown-timeout,
   counting what it could not deliver.
4. agent-503: the agent answers 503 (overloaded) for a while; nothing is lost.
5. follow-rotation-restart: a log file written while it is rotated (rename and copy-truncate)
   and the relay restarted twice: every record arrives exactly once.
6. distinct-hosts: 100,000 new Hosts a second for 10 s: at most --max-resources resource tags
   per metrics interval, the rest folded and counted; every span still sent; peak RSS reported
   and held under 40 MiB. DISTINCT_HOSTS_MAX_RESOURCES=N runs it with another cap.

    python3 relay/scripts/drills.py [drill ...]
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
RELAY = str(TARGET / "release/traefik-datadog-relay")
GEN = str(TARGET / "release/examples/gen-records")
AGENT = str(TARGET / "release/examples/fake-agent")
TMP = Path(tempfile.mkdtemp(prefix="relay-drills-"))


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Agent:
    def __init__(self, name: str) -> None:
        self.port = free_port()
        self.report = TMP / f"{name}.agent"
        self.status = TMP / f"{name}.status"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Agent":
        self.proc = subprocess.Popen([AGENT, "--listen", f"127.0.0.1:{self.port}", "--report", str(self.report),
                                      "--status-file", str(self.status)])
        time.sleep(0.2)
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(5)

    def traces(self) -> int:
        try:
            return int(self.report.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            return 0

    def bad(self) -> int:
        try:
            return int(self.report.read_text().split()[2])
        except (OSError, IndexError, ValueError):
            return 0


class Relay:
    def __init__(self, name: str, args: list[str], agent: Agent) -> None:
        self.err = TMP / f"{name}.err"
        self.args = [*args, "--agent-url", f"http://127.0.0.1:{agent.port}",
                     "--dogstatsd-url", f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}", "--telemetry-interval", "1s"]
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Relay":
        # Info lines (the counters) go to stdout, warnings and errors to stderr: one file for both.
        log = open(self.err, "ab")
        self.proc = subprocess.Popen([RELAY, *self.args], stdout=log, stderr=log)
        log.close()
        return self

    def stop(self, timeout: float = 15) -> tuple[int, float]:
        assert self.proc
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        return rc, time.monotonic() - t

    def counters(self) -> dict[str, int]:
        lines = [l for l in self.err.read_text().splitlines() if " counters " in l]
        return {k: int(v) for k, v in re.findall(r"([\w.]+)=(\d+)", lines[-1])} if lines else {}

    def rss_kib(self) -> int:
        assert self.proc
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0


def udp_send(port: int, n: int, seed: int, rate: int = 0) -> None:
    subprocess.run([GEN, "--udp", f"127.0.0.1:{port}", "--count", str(n), "--seed", str(seed),
                    "--rate", str(rate)], check=True)


def wait_for(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def drill_agent_down_then_up() -> list[str]:
    agent = Agent("down-up")  # not started: connection refused
    port = free_port(socket.SOCK_DGRAM)
    relay = Relay("down-up", ["--udp", f"127.0.0.1:{port}"], agent).start()
    time.sleep(0.3)
    udp_send(port, 20_000, 1, rate=50_000)
    time.sleep(2)
    agent.start()
    ok = wait_for(lambda: agent.traces() >= 20_000, 15)
    rc, _ = relay.stop()
    agent.stop()
    c = relay.counters()
    p = []
    if not ok or agent.traces() != 20_000:
        p.append(f"agent got {agent.traces()} of 20000")
    if c.get("spans_sent") != 20_000 or c.get("spans_dropped") != 0:
        p.append(f"counters {c}")
    if c.get("payloads_retried", 0) == 0:
        p.append("no retries counted")
    if rc != 0:
        p.append(f"exit {rc}")
    print(f"  retries={c.get('payloads_retried')} agent_errors={c.get('agent_errors')} sent={c.get('spans_sent')}")
    return p


def udp_accounting(c: dict, agent: Agent) -> tuple[int, list[str]]:
    """Records the UDP input handed on, and how they fail to add up: every one sent or dropped
    (counted), and the agent got exactly what the relay says it sent."""
    handed_on = c.get("udp.received", 0) - c.get("udp.queue_full", 0)
    p = []
    if c.get("spans_sent", 0) + c.get("spans_dropped", 0) != handed_on:
        p.append(f"sent {c.get('spans_sent')} + dropped {c.get('spans_dropped')} != handed on {handed_on}: {c}")
    if agent.traces() != c.get("spans_sent"):
        p.append(f"agent got {agent.traces()}, relay says {c.get('spans_sent')} sent")
    return handed_on, p


def drill_buffer_cap() -> list[str]:
    agent = Agent("cap")
    port = free_port(socket.SOCK_DGRAM)
    relay = Relay("cap", ["--udp", f"127.0.0.1:{port}", "--max-buffered-spans", "20000", "--shutdown-timeout", "1s"],
                  agent).start()
    time.sleep(0.3)
    udp_send(port, 100_000, 2, rate=80_000)
    time.sleep(2)
    rss = relay.rss_kib()
    agent.start()
    wait_for(lambda: agent.traces() >= 20_000, 15)
    time.sleep(1.5)
    rc, _ = relay.stop()
    agent.stop()
    c = relay.counters()
    received, p = udp_accounting(c, agent)
    if c.get("buffer_full", 0) == 0 or c.get("buffer_cap_hits", 0) == 0:
        p.append(f"cap never hit: {c}")
    if agent.traces() < 19_000 or agent.traces() > 21_000:
        p.append(f"expected about the cap (20000 + one payload in flight) delivered, got {agent.traces()}")
    if rc != 0:
        p.append(f"exit {rc}")
    print(f"  received={received} sent={c.get('spans_sent')} dropped(buffer_full)={c.get('buffer_full')} "
          f"cap_hits={c.get('buffer_cap_hits')} peak RSS while holding 20k spans={rss / 1024:.1f} MiB")
    return p


def drill_memory_agent_down() -> list[str]:
    """Defaults, agent down, a long burst: memory stays under 30 MiB."""
    agent = Agent("memory")
    port = free_port(socket.SOCK_DGRAM)
    relay = Relay("memory", ["--udp", f"127.0.0.1:{port}", "--shutdown-timeout", "1s"], agent).start()
    time.sleep(0.3)
    udp_send(port, 200_000, 5, rate=100_000)
    time.sleep(1.5)
    rss = relay.rss_kib()
    agent.start()
    wait_for(lambda: agent.traces() > 0, 10)
    time.sleep(2)
    rc, _ = relay.stop()
    agent.stop()
    c = relay.counters()
    handed_on, p = udp_accounting(c, agent)
    if rss > 30 * 1024:
        p.append(f"peak RSS {rss / 1024:.1f} MiB > 30 MiB")
    if rc != 0:
        p.append(f"exit {rc}")
    print(f"  handed on={handed_on} sent={c.get('spans_sent')} dropped(buffer_full)={c.get('buffer_full')} "
          f"peak RSS with the agent down={rss / 1024:.1f} MiB")
    return p


def drill_distinct_hosts() -> list[str]:
    """A catch-all router hit with a new Host per request: metric series stay bounded. Through the
    FIFO, the fastest input, so the generator keeps up the rate on a shared machine."""
    cap = int(os.environ.get("DISTINCT_HOSTS_MAX_RESOURCES", "1000"))
    agent = Agent("hosts").start()
    fifo = TMP / "hosts.fifo"
    relay = Relay("hosts", ["--pipe", str(fifo), "--max-resources", str(cap)], agent).start()
    wait_for(fifo.exists, 5)
    t = time.monotonic()
    subprocess.run([GEN, "--format", "frames", "--out", str(fifo), "--count", "1000000", "--seed", "6",
                    "--hosts", str(2**64 - 1), "--rate", "100000"], check=True)
    sent_s = time.monotonic() - t
    wait_for(lambda: (c := relay.counters()).get("queue_depth") == 0 and c.get("buffered_spans") == 0
             and c.get("spans_sent", 0) > 0 and agent.traces() == c.get("spans_sent"), 60)
    rss = relay.rss_kib()
    rc, _ = relay.stop()
    agent.stop()
    c = relay.counters()
    handed_on = c.get("pipe.received", 0) - c.get("pipe.queue_full", 0)
    p = []
    if c.get("pipe.received") != 1_000_000:
        p.append(f"the relay read {c.get('pipe.received')} of 1,000,000 records")
    if c.get("spans_sent", 0) + c.get("spans_dropped", 0) != handed_on or agent.traces() != c.get("spans_sent"):
        p.append(f"spans do not add up: agent {agent.traces()}, {c}")
    folded = c.get("resources_folded", 0)
    # Every interval (2 s) admits at most `cap` resources; the run spans at most this many.
    intervals = int(sent_s / 2) + 3
    if not handed_on - cap * intervals <= folded <= handed_on:
        p.append(f"folded {folded} for {handed_on} records over <= {intervals} intervals of cap {cap}")
    if rss > 40 * 1024:
        p.append(f"peak RSS {rss / 1024:.1f} MiB > 40 MiB")
    if rc != 0:
        p.append(f"exit {rc}")
    print(f"  1,000,000 distinct Hosts in {sent_s:.1f}s ({1e6 / sent_s:,.0f}/s); handed on={handed_on} "
          f"queue_full={c.get('pipe.queue_full')} folded={folded} spans sent={c.get('spans_sent')} "
          f"peak RSS={rss / 1024:.1f} MiB")
    return p


def drill_sigterm_agent_down() -> list[str]:
    agent = Agent("sigterm")  # never started
    port = free_port(socket.SOCK_DGRAM)
    relay = Relay("sigterm", ["--udp", f"127.0.0.1:{port}", "--shutdown-timeout", "2s"], agent).start()
    time.sleep(0.3)
    udp_send(port, 5_000, 3)
    time.sleep(1.5)
    rc, took = relay.stop()
    c = relay.counters()
    p = []
    if rc != 0:
        p.append(f"exit {rc}")
    if took > 4.5:
        p.append(f"took {took:.1f}s to stop with --shutdown-timeout 2s")
    if c.get("shutdown") != 5_000 or c.get("spans_sent") != 0:
        p.append(f"counters {c}")
    print(f"  stopped in {took:.2f}s, exit {rc}, dropped at shutdown={c.get('shutdown')}")
    return p


def drill_agent_503() -> list[str]:
    agent = Agent("503")
    agent.status.write_text("503")
    agent.start()
    port = free_port(socket.SOCK_DGRAM)
    relay = Relay("503", ["--udp", f"127.0.0.1:{port}"], agent).start()
    time.sleep(0.3)
    udp_send(port, 10_000, 4, rate=20_000)
    time.sleep(2)
    agent.status.write_text("200")
    ok = wait_for(lambda: agent.traces() >= 10_000, 15)
    rc, _ = relay.stop()
    agent.stop()
    c = relay.counters()
    p = []
    if not ok or agent.traces() != 10_000 or c.get("spans_dropped") != 0:
        p.append(f"agent got {agent.traces()}; counters {c}")
    if agent.bad():
        p.append(f"{agent.bad()} payloads whose trace count did not match")
    if rc != 0:
        p.append(f"exit {rc}")
    print(f"  agent_errors={c.get('agent_errors')} retries={c.get('payloads_retried')} sent={c.get('spans_sent')}")
    return p


def drill_follow_rotation_restart() -> list[str]:
    agent = Agent("follow").start()
    log = TMP / "traefik.log"
    state = TMP / "follow.state"
    args = ["--follow", str(log), "--state", str(state), "--follow-from", "beginning"]
    relay = Relay("follow", args, agent).start()
    total = 0
    stop = threading.Event()

    def writer(seed: int, n: int) -> None:
        subprocess.run([GEN, "--format", "json", "--count", str(n), "--seed", str(seed), "--interleave", "1",
                        "--out", str(log), "--rate", "20000"], check=True)

    # Written while the relay runs; rotated by rename in the middle.
    writer(10, 5_000)
    total += 5_000
    os.rename(log, TMP / "traefik.log.1")
    writer(11, 5_000)  # a new file at the path
    total += 5_000
    time.sleep(0.5)
    rc1, _ = relay.stop()
    # Written while the relay is down, then rotated by rename while down.
    writer(12, 3_000)
    total += 3_000
    os.rename(log, TMP / "traefik.log.2")
    writer(13, 2_000)
    total += 2_000
    relay = Relay("follow", args, agent).start()
    time.sleep(1.0)
    # Copy-truncate while running.
    writer(14, 2_000)
    total += 2_000
    time.sleep(0.6)
    data = log.read_bytes()
    (TMP / "traefik.log.3").write_bytes(data)
    with open(log, "r+b") as f:
        f.truncate(0)
    writer(15, 1_000)
    total += 1_000
    # A partial last line, completed later.
    with open(log, "ab") as f:
        f.write(b'{"level":"info","message":"half a fore')
    time.sleep(0.5)
    with open(log, "ab") as f:
        f.write(b'ign line"}\n')
    ok = wait_for(lambda: agent.traces() >= total, 10)
    time.sleep(1.5)
    rc2, _ = relay.stop()
    stop.set()
    agent.stop()
    p = []
    if agent.traces() != total:
        p.append(f"agent got {agent.traces()} spans for {total} records")
    if rc1 or rc2:
        p.append(f"exit codes {rc1} {rc2}")
    print(f"  records written {total}, spans at agent {agent.traces()}, state: {state.read_text().strip()}")
    return p


DRILLS = {
    "agent-down-then-up": drill_agent_down_then_up,
    "buffer-cap": drill_buffer_cap,
    "memory-agent-down": drill_memory_agent_down,
    "sigterm-agent-down": drill_sigterm_agent_down,
    "agent-503": drill_agent_503,
    "follow-rotation-restart": drill_follow_rotation_restart,
    "distinct-hosts": drill_distinct_hosts,
}


def main() -> int:
    names = sys.argv[1:] or list(DRILLS)
    failed = 0
    for name in names:
        print(f"{name}:")
        problems = DRILLS[name]()
        if problems:
            failed += 1
            print("  FAIL: " + "; ".join(problems))
        else:
            print("  ok")
    print(f"logs in {TMP}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
