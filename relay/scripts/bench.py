#!/usr/bin/env python3
"""Throughput and memory of traefik-datadog-relay on ONE core.

The relay runs pinned to CPU 0 (`taskset -c 0`, all its threads); the fake agent
(examples/fake-agent), the DogStatsD sink and the writers run on the other CPUs.
For each input it reports records/s from start to the last span acknowledged by the
agent, peak RSS (VmHWM), and what was dropped.

    python3 relay/scripts/bench.py [--count N] [--modes follow,stdin,pipe,udp]
"""

from __future__ import annotations

import argparse
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
RELAY = TARGET / "release/traefik-datadog-relay"
GEN = TARGET / "release/examples/gen-records"
AGENT = TARGET / "release/examples/fake-agent"
OTHER_CPUS = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)) if c != 0) or "0"


def free_port(kind: int) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def sink() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("127.0.0.1", 0))

    def drain() -> None:
        while True:
            s.recv(65535)

    threading.Thread(target=drain, daemon=True).start()
    return s.getsockname()[1]


def agent_traces(report: Path) -> int:
    try:
        return int(report.read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def counters(err: str) -> dict[str, int]:
    lines = [l for l in err.splitlines() if " counters " in l]
    return {k: int(v) for k, v in re.findall(r"([\w.]+)=(\d+)", lines[-1])} if lines else {}


def run(mode: str, n: int, tmp: Path, files: dict[str, Path]) -> dict:
    report = tmp / f"agent-{mode}.txt"
    report.unlink(missing_ok=True)
    port = free_port(socket.SOCK_STREAM)
    agent = subprocess.Popen(["taskset", "-c", OTHER_CPUS, str(AGENT), "--listen", f"127.0.0.1:{port}",
                              "--report", str(report)])
    statsd = sink()
    common = ["--agent-url", f"http://127.0.0.1:{port}", "--dogstatsd-url", f"udp://127.0.0.1:{statsd}"]
    err_path = tmp / f"relay-{mode}.err"
    stdin = subprocess.DEVNULL
    writer = None
    if mode == "follow":
        state = tmp / "state"
        state.unlink(missing_ok=True)
        args = ["--follow", str(files["json"]), "--follow-from", "beginning", "--state", str(state)]
    elif mode == "stdin":
        args = ["--stdin"]
        stdin = open(files["json"], "rb")
    elif mode == "stdin-console":
        args = ["--stdin"]
        stdin = open(files["console"], "rb")
    elif mode.startswith("pipe"):
        fifo = tmp / "bench.fifo"
        args = ["--pipe", str(fifo)]
    elif mode == "udp":
        udp_port = free_port(socket.SOCK_DGRAM)
        args = ["--udp", f"127.0.0.1:{udp_port}"]
    else:
        raise SystemExit(f"unknown mode {mode}")
    time.sleep(0.2)
    t0 = time.monotonic()
    relay = subprocess.Popen(["taskset", "-c", "0", str(RELAY), *args, *common], stdin=stdin,
                             stdout=subprocess.DEVNULL, stderr=open(err_path, "wb"))
    if mode.startswith("pipe"):
        while not fifo.exists():
            time.sleep(0.01)
        # "pipe": as fast as the writer can; "pipe@R": paced at R records/s.
        rate = mode.partition("@")[2] or "0"
        writer = subprocess.Popen(["taskset", "-c", OTHER_CPUS, str(GEN), "--format", "frames", "--out", str(fifo),
                                   "--count", str(n), "--rate", rate])
    if mode == "udp":
        time.sleep(0.2)
        writer = subprocess.Popen(["taskset", "-c", OTHER_CPUS, str(GEN), "--udp", f"127.0.0.1:{udp_port}",
                                   "--count", str(n)])
    peak = 0
    last_change, last = time.monotonic(), -1
    while True:
        got = agent_traces(report)
        peak = max(peak, hwm_kib(relay.pid))
        if got != last:
            last, last_change = got, time.monotonic()
        if got >= n or relay.poll() is not None and got == last and time.monotonic() - last_change > 1.5:
            break
        if time.monotonic() - last_change > 5:
            break
        time.sleep(0.02)
    t1 = last_change if got < n else time.monotonic()
    peak = max(peak, hwm_kib(relay.pid))
    if relay.poll() is None:
        relay.send_signal(signal.SIGTERM)
    relay.wait(15)
    if writer:
        writer.wait(30)
    time.sleep(0.3)
    got = agent_traces(report)
    agent.terminate()
    agent.wait(5)
    c = counters(err_path.read_text())
    return {"mode": mode, "spans": got, "seconds": t1 - t0, "rate": got / (t1 - t0), "peak_rss_mib": peak / 1024,
            "counters": {k: v for k, v in c.items() if v and k not in ("rss_bytes",)}}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=300_000)
    ap.add_argument("--modes", default="follow,stdin,stdin-console,pipe,pipe@100000,udp")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    files = {"json": tmp / "traefik.json.log", "console": tmp / "traefik.console.log"}
    for fmt, path in files.items():
        with open(path, "wb") as f:
            subprocess.run([str(GEN), "--format", fmt, "--count", str(a.count), "--hosts", "20"], stdout=f, check=True)
    print(f"relay pinned to CPU 0; agent, sinks and writers on CPUs {OTHER_CPUS}; {a.count} records per run")
    for mode in a.modes.split(","):
        r = run(mode, a.count, tmp, files)
        print(f"{r['mode']:>14}: {r['spans']:>8} spans in {r['seconds']:6.2f}s = {r['rate']:>9,.0f} records/s, "
              f"peak RSS {r['peak_rss_mib']:.1f} MiB; {r['counters']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
