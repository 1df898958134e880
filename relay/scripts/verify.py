#!/usr/bin/env python3
"""End-to-end check of traefik-datadog-relay against the official Datadog test agent.

Feeds records through --udp, --pipe and --stdin at once (plus garbage on each), then checks:
the test agent accepted exactly one span per record with no trace-check failures, a UDP
DogStatsD listener got well-formed datagrams whose hits add up, stdout carried every foreign
log line unchanged, and SIGTERM gives exit 0 with final counters.

    python3 relay/scripts/verify.py [--relay PATH] [--gen PATH] [--agent-bin PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The relay's own lines (info ones share stdout with the copied lines).
RELAY_LINE = re.compile(rb"^\S+Z traefik-datadog-relay (info|warn|error): ")
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
LINE = re.compile(rb"^[a-zA-Z][\w.]*:[^|:]+(:[^|:]+)*\|(c|g|ms|h|s|d)(\|@[0-9.]+)?(\|#[^|\n]+)?$")


def free_port(kind: int) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Statsd(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.datagrams: list[bytes] = []

    def run(self) -> None:
        while True:
            try:
                self.datagrams.append(self.sock.recv(65535))
            except OSError:
                return

    def lines(self) -> list[bytes]:
        return [l for d in list(self.datagrams) for l in d.split(b"\n") if l]

    def total(self, name: str, **tags: str) -> float:
        want = {f"{k}:{v}" for k, v in tags.items()}
        n = 0.0
        for l in self.lines():
            head, _, rest = l.decode().partition("|")
            metric, _, value = head.partition(":")
            ltags = set(rest.split("|#", 1)[1].split(",")) if "|#" in rest else set()
            if metric == name and want <= ltags:
                n += float(value)
        return n


def get(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        body = r.read()
    return json.loads(body) if body else None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--relay", default=str(TARGET / "release/traefik-datadog-relay"))
    ap.add_argument("--gen", default=str(TARGET / "release/examples/gen-records"))
    ap.add_argument("--agent-bin", default="ddapm-test-agent")
    ap.add_argument("--count", type=int, default=3000, help="records per input")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="relay-verify-"))
    agent_port, udp_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
    agent = subprocess.Popen([args.agent_bin, "--port", str(agent_port)], stdout=open(tmp / "agent.log", "wb"),
                             stderr=subprocess.STDOUT)
    statsd = Statsd()
    statsd.start()
    relay = None
    try:
        for _ in range(100):
            try:
                get(f"http://127.0.0.1:{agent_port}/info")
                break
            except OSError:
                time.sleep(0.1)
        fifo = tmp / "traefik-datadog.fifo"
        relay = subprocess.Popen(
            [args.relay, "--udp", f"127.0.0.1:{udp_port}", "--pipe", str(fifo), "--stdin",
             "--agent-url", f"http://127.0.0.1:{agent_port}", "--dogstatsd-url", f"udp://127.0.0.1:{statsd.port}",
             "--metrics-interval", "1s", "--telemetry-interval", "2s"],
            stdin=subprocess.PIPE, stdout=open(tmp / "relay.out", "wb"), stderr=open(tmp / "relay.err", "wb"))
        for _ in range(100):
            if fifo.exists():
                break
            time.sleep(0.05)
        n = args.count
        gen = args.gen
        # UDP: each frame one datagram, plus junk datagrams.
        subprocess.run([gen, "--udp", f"127.0.0.1:{udp_port}", "--count", str(n), "--seed", "1"], check=True)
        junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for payload in (b"", b"TD\x01\x00\x05\x00abc", b"\xff" * 100):
            junk.sendto(payload, ("127.0.0.1", udp_port))
        # FIFO: frames written one per write, garbage in between.
        subprocess.run([gen, "--format", "frames", "--out", str(fifo), "--count", str(n), "--seed", "2"], check=True)
        with open(fifo, "wb", buffering=0) as f:
            f.write(b"garbage between frames TD")
        subprocess.run([gen, "--format", "frames", "--out", str(fifo), "--count", "1", "--seed", "9"], check=True)
        # stdin: JSON and console lines, foreign lines, a broken record line, non-UTF-8.
        json_lines = subprocess.run([gen, "--format", "json", "--count", str(n), "--seed", "3",
                                     "--interleave", "1"], check=True, capture_output=True).stdout
        console = subprocess.run([gen, "--format", "console", "--count", "10", "--seed", "4"],
                                 check=True, capture_output=True).stdout
        foreign_extra = b"\xff\xfe not utf-8\n" + b"x" * 100_000 + b"\n"
        broken = b'{"level":"info","middlewareType":"wasm","message":"{\\"marker\\":\\"traefik-datadog\\",\\"schema\\":1,\\"cut'  + b'"}\n'
        assert relay.stdin is not None
        relay.stdin.write(json_lines + console + foreign_extra + broken)
        relay.stdin.flush()
        expected_records = n + n + 1 + n + 10

        deadline = time.time() + 15
        spans: list[dict] = []
        while time.time() < deadline:
            traces = get(f"http://127.0.0.1:{agent_port}/test/session/traces") or []
            spans = [s for t in traces for s in t]
            if len(spans) >= expected_records:
                break
            time.sleep(0.3)
        time.sleep(2.5)  # one more metrics interval and telemetry period
        relay.send_signal(signal.SIGTERM)
        rc = relay.wait(10)
        time.sleep(0.5)  # let the listener thread read the last datagrams
        traces = get(f"http://127.0.0.1:{agent_port}/test/session/traces") or []
        spans = [s for t in traces for s in t]
        failures = urllib.request.urlopen(f"http://127.0.0.1:{agent_port}/test/trace_check/failures",
                                          timeout=5).read().decode()
        # stdout holds the copied lines and the relay's info lines (the counters among them).
        raw_out = (tmp / "relay.out").read_bytes().splitlines(keepends=True)
        own = [l for l in raw_out if RELAY_LINE.match(l)]
        out = b"".join(l for l in raw_out if not RELAY_LINE.match(l))
        err = b"".join(own).decode(errors="replace") + (tmp / "relay.err").read_text()

        problems = []
        if rc != 0:
            problems.append(f"relay exit code {rc}")
        if len(spans) != expected_records:
            problems.append(f"{len(spans)} spans at the agent, expected {expected_records}")
        ids = Counter(s["span_id"] for s in spans)
        if len(ids) != len(spans):
            problems.append("duplicate span ids")
        if failures.strip() not in ("", "{}", "[]", "200: OK"):
            problems.append(f"test agent trace-check failures: {failures[:500]}")
        routers = Counter(s["meta"].get("traefik.router.name") for s in spans)
        if routers.get("r0@file", 0) + routers.get("r1@file", 0) + routers.get("r2@file", 0) != n + 10:
            problems.append(f"router tags: {routers}")
        p0 = sum(1 for s in spans if s["metrics"].get("_sampling_priority_v1") == 0)
        if p0 == 0:
            problems.append("no priority-0 span reached the agent")
        foreign = b"".join(l + b"\n" for l in json_lines.split(b"\n") if l and b"traefik-datadog" not in l)
        if out != foreign + foreign_extra:
            problems.append(f"stdout is not exactly the foreign lines ({len(out)} vs {len(foreign + foreign_extra)} bytes)")
        bad = [l for l in statsd.lines() if not LINE.match(l)]
        if bad:
            problems.append(f"malformed DogStatsD lines: {bad[:3]}")
        big = [len(d) for d in statsd.datagrams if len(d) > 1432]
        if big:
            problems.append(f"datagrams over 1432 bytes: {big[:3]}")
        hits = statsd.total("traefik_datadog.request.hits")
        if hits != expected_records:
            problems.append(f"DogStatsD hits {hits}, expected {expected_records}")
        received = statsd.total("traefik_datadog.relay.records_received")
        if received != expected_records:
            problems.append(f"telemetry records_received {received}, expected {expected_records}")
        malformed = {i: statsd.total("traefik_datadog.relay.records_malformed", input=i) for i in ("udp", "pipe", "stdin")}
        # The empty datagram is what the plugin sends as a probe: not malformed (stray_probes).
        if malformed != {"udp": 2.0, "pipe": 1.0, "stdin": 1.0}:
            problems.append(f"malformed counts {malformed}")
        own_text = b"".join(own).decode(errors="replace").splitlines()
        if len(own_text) < 2 or "counters" not in own_text[-2]:
            problems.append("no final counters line")

        print(f"spans at agent: {len(spans)} (expected {expected_records}); priority-0 spans: {p0}")
        print(f"dogstatsd: {len(statsd.datagrams)} datagrams, {len(statsd.lines())} lines, hits={hits:.0f}, "
              f"errors={statsd.total('traefik_datadog.request.errors'):.0f}, malformed={malformed}")
        print(f"stdout passthrough: {len(out)} bytes; relay exit code {rc}")
        print("relay log (last lines):")
        for l in err.splitlines()[-4:]:
            print("   ", l[:400])
        if problems:
            print("PROBLEMS:\n  " + "\n  ".join(problems))
            print(f"logs in {tmp}")
            return 1
        print("OK")
        return 0
    finally:
        if relay and relay.poll() is None:
            relay.kill()
        agent.terminate()
        agent.wait(5)
        statsd.sock.close()


if __name__ == "__main__":
    sys.exit(main())
