#!/usr/bin/env python3
"""Throughput and memory of traefik-datadog-relay on ONE core, every writer unpaced.

The relay runs pinned to CPU 0 (`taskset -c 0`, all its threads); the fake agent
(examples/fake-agent), the DogStatsD sink and the writers run on the other CPUs. Every
writer goes as fast as it can: what the relay cannot follow waits (the FIFO's writer blocks
or spools, stdin's writer blocks, the followed file keeps it) or, for UDP, is dropped by the
kernel and counted. For each input it reports:

- records/s from the relay's start to the last span acknowledged by the agent;
- records per CPU-second of the relay (user + system time): what one whole core would do,
  whatever else shares the machine;
- what was dropped (counted by the relay, and for UDP what never arrived);
- how long the inputs held back (`held_back_us`) and, for the plugin's way of writing, how
  much of the burst went through the spool (its peak size on disk);
- peak RSS (VmHWM).

    python3 relay/scripts/bench.py [--count N] [--repeat R] [--modes follow,stdin,...] [--relay-args '...']

Modes: follow, stdin, stdin-console, pipe (a blocking writer: the FIFO's line rate),
pipe-plugin (frames written as the plugin writes them: non-blocking, the spool when the pipe
is full), udp. A mode may end in @R to pace its writer at R records/s (pipe, pipe-plugin,
udp). With --repeat the modes run interleaved and the median run of each is printed.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
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
TICK = os.sysconf("SC_CLK_TCK")


def free_port(kind: int) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def sink() -> tuple[int, socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("127.0.0.1", 0))

    def drain() -> None:
        try:
            while True:
                s.recv(65535)
        except OSError:
            pass

    threading.Thread(target=drain, daemon=True).start()
    return s.getsockname()[1], s


def agent_traces(report: Path, before: int = 0) -> int:
    """Traces the fake agent acknowledged; `before` while its report is being rewritten."""
    try:
        return max(before, int(report.read_text().split()[1]))
    except (OSError, IndexError, ValueError):
        return before


def hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system time of the process and all its threads so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def counters(err: str) -> dict[str, int]:
    lines = [l for l in err.splitlines() if " counters " in l]
    return {k: int(v) for k, v in re.findall(r"([\w.]+)=(\d+)", lines[-1])} if lines else {}


def spool_bytes(fifo: Path) -> int:
    total = 0
    for f in fifo.parent.glob(fifo.name + ".spool*"):
        try:
            total += f.stat().st_size
        except OSError:
            pass
    return total


def run(mode: str, n: int, tmp: Path, files: dict[str, Path], extra: list[str]) -> dict:
    name, _, rate = mode.partition("@")
    rate = rate or "0"
    report = tmp / f"agent-{name}.txt"
    report.unlink(missing_ok=True)
    port = free_port(socket.SOCK_STREAM)
    agent = subprocess.Popen(["taskset", "-c", OTHER_CPUS, str(AGENT), "--listen", f"127.0.0.1:{port}",
                              "--report", str(report)], stdout=subprocess.DEVNULL)
    statsd, statsd_sock = sink()
    common = ["--agent-url", f"http://127.0.0.1:{port}", "--dogstatsd-url", f"udp://127.0.0.1:{statsd}"]
    err_path = tmp / f"relay-{name}.err"
    writer_err = tmp / f"writer-{name}.err"
    stdin = subprocess.DEVNULL
    writer = None
    fifo = tmp / "bench.fifo"
    for f in tmp.glob("bench.fifo*"):
        f.unlink()
    if name == "follow":
        state = tmp / "state"
        state.unlink(missing_ok=True)
        args = ["--follow", str(files["json"]), "--follow-from", "beginning", "--state", str(state)]
    elif name == "stdin":
        args = ["--stdin"]
        stdin = open(files["json"], "rb")
    elif name == "stdin-console":
        args = ["--stdin"]
        stdin = open(files["console"], "rb")
    elif name in ("pipe", "pipe-plugin"):
        args = ["--pipe", str(fifo)]
    elif name == "udp":
        udp_port = free_port(socket.SOCK_DGRAM)
        args = ["--udp", f"127.0.0.1:{udp_port}"]
    else:
        raise SystemExit(f"unknown mode {mode}")
    time.sleep(0.2)
    load_before = os.getloadavg()[0]
    t0 = time.monotonic()
    # The relay's log, info lines (the counters) on stdout and the rest on stderr, in one file;
    # with --stdin the copied lines land there too (the counters are picked out by their text).
    log = open(err_path, "wb")
    relay = subprocess.Popen(["taskset", "-c", "0", str(RELAY), *args, *common, *extra], stdin=stdin,
                             stdout=log, stderr=log)
    log.close()
    if name.startswith("pipe"):
        while not fifo.exists():
            time.sleep(0.01)
        plugin = ["--like-plugin"] if name == "pipe-plugin" else []
        writer = subprocess.Popen(["taskset", "-c", OTHER_CPUS, str(GEN), "--format", "frames", "--out", str(fifo),
                                   "--count", str(n), "--hosts", "20", "--rate", rate, *plugin],
                                  stderr=open(writer_err, "wb"))
    if name == "udp":
        time.sleep(0.2)
        writer = subprocess.Popen(["taskset", "-c", OTHER_CPUS, str(GEN), "--udp", f"127.0.0.1:{udp_port}",
                                   "--count", str(n), "--hosts", "20", "--rate", rate])
    peak = peak_spool = 0
    last_change, last = time.monotonic(), -1
    cpu = 0.0
    got = 0
    while True:
        got = agent_traces(report, got)
        peak = max(peak, hwm_kib(relay.pid))
        cpu = max(cpu, cpu_seconds(relay.pid))
        if name.startswith("pipe"):
            peak_spool = max(peak_spool, spool_bytes(fifo))
        if got != last:
            last, last_change = got, time.monotonic()
        if got >= n or relay.poll() is not None and got == last and time.monotonic() - last_change > 1.5:
            break
        if time.monotonic() - last_change > 5:
            break
        time.sleep(0.02)
    t1 = last_change if got < n else time.monotonic()
    peak = max(peak, hwm_kib(relay.pid))
    cpu = max(cpu, cpu_seconds(relay.pid))
    load_after = os.getloadavg()[0]
    if relay.poll() is None:
        relay.send_signal(signal.SIGTERM)
    relay.wait(15)
    if writer:
        writer.wait(60)
    time.sleep(0.3)
    got = agent_traces(report, got)
    agent.terminate()
    agent.wait(5)
    statsd_sock.close()
    c = counters(err_path.read_text())
    received = sum(v for k, v in c.items() if k.endswith(".received"))
    dropped = {k: v for k, v in c.items() if k.endswith((".queue_full", ".receive_buffer")) and v}
    # Datagrams that neither arrived nor were counted by the kernel's drop count.
    never = n - received - c.get("udp.receive_buffer", 0)
    if name == "udp" and never:
        dropped["never received, uncounted"] = never
    writer_says = writer_err.read_text().strip() if writer_err.exists() else ""
    held = sum(v for k, v in c.items() if k.endswith(".held_back_us")) / 1e6
    return {"mode": mode, "spans": got, "seconds": t1 - t0, "rate": got / (t1 - t0),
            "per_cpu_s": got / cpu if cpu else 0.0, "cpu": cpu, "peak_rss_mib": peak / 1024,
            "dropped": dropped, "held_s": held, "peak_spool_mib": peak_spool / (1 << 20),
            "writer": writer_says, "load": (load_before, load_after)}


def show(r: dict) -> str:
    extra = []
    if r["held_s"]:
        extra.append(f"held back {r['held_s']:.2f}s")
    if r["peak_spool_mib"]:
        extra.append(f"spool peak {r['peak_spool_mib']:.1f} MiB")
    if r["writer"]:
        extra.append(r["writer"].removeprefix("gen-records: "))
    return (f"{r['mode']:>14}: {r['spans']:>8} spans in {r['seconds']:6.2f}s = {r['rate']:>9,.0f} records/s, "
            f"{r['per_cpu_s']:>9,.0f} per CPU-second ({r['cpu']:.2f}s CPU), peak RSS {r['peak_rss_mib']:.1f} MiB, "
            f"dropped {r['dropped'] or 0}; {'; '.join(extra)}; load {r['load'][0]:.1f}->{r['load'][1]:.1f}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--modes", default="follow,stdin,stdin-console,pipe,pipe-plugin,udp")
    ap.add_argument("--relay-args", default="", help="more flags for the relay, e.g. '--queue-size 2000'")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    files = {"json": tmp / "traefik.json.log", "console": tmp / "traefik.console.log"}
    for fmt, path in files.items():
        with open(path, "wb") as f:
            subprocess.run([str(GEN), "--format", fmt, "--count", str(a.count), "--hosts", "20"], stdout=f, check=True)
    print(f"relay pinned to CPU 0; agent, sinks and writers on CPUs {OTHER_CPUS}; {a.count} records per run; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    modes = a.modes.split(",")
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    for _ in range(a.repeat):
        for mode in modes:
            r = run(mode, a.count, tmp, files, a.relay_args.split())
            runs[mode].append(r)
            print(show(r), flush=True)
    if a.repeat > 1:
        print("median of each mode (by records/s):")
        for mode in modes:
            rs = sorted(runs[mode], key=lambda r: r["rate"])
            med = rs[len(rs) // 2]
            rates = ", ".join(f"{r['rate']:,.0f}" for r in runs[mode])
            per_cpu = statistics.median(r["per_cpu_s"] for r in runs[mode])
            print(f"{show(med)}; records/s over the runs {rates}; per CPU-second median {per_cpu:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
