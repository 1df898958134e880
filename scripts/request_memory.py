#!/usr/bin/env python3
"""Traefik's memory over many requests through this module (pipe mode), without reloads.

Traefik + the plugin in pipe mode, the FIFO drained by a reader thread that counts records (the
relay's job is not measured here); wrk drives rounds of ROUND seconds at CONNS connections
against the aiohttp test backend, and Traefik's RSS and Go heap (expvar memstats of its API) are
sampled after each round. A flat series after the first rounds means memory per instance does not
grow with the number of requests: instances live in a sync.Pool, each holding its own linear
memory, as many as the peak concurrency.

Usage: PLUGIN_DIR=... python scripts/request_memory.py [--requests 1000000] [--conns 64] [--round 10]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))

from harness import DD_CONFIG, Backend, Route  # noqa: E402
from reloads import FifoReader, ReloadTraefik, snapshot  # noqa: E402


def wrk(port: int, seconds: int, conns: int) -> int:
    out = subprocess.run([shutil.which("wrk") or "wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "-H", "Host: a.test",
                          f"http://127.0.0.1:{port}/mem"], capture_output=True, text=True, check=True,
                         timeout=seconds + 60).stdout
    m = re.search(r"(\d+) requests in", out)
    return int(m.group(1)) if m else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--round", type=int, default=10, help="seconds per wrk round")
    args = ap.parse_args()
    with TemporaryDirectory(prefix="request-memory-") as d:
        work = Path(d)
        run_dir = work / "run"
        run_dir.mkdir()
        reader = FifoReader(run_dir / "traefik-datadog.fifo")
        backend = Backend(work / "backend.log")
        conf = {**DD_CONFIG, "mode": "pipe", "pipePath": "/run/dd/traefik-datadog.fifo"}
        t = ReloadTraefik(work / "traefik", backend, routes=[Route("web", ["dd"])], middlewares={"dd": conf},
                          mounts=[f"{run_dir}:/run/dd"], log_level="ERROR")
        try:
            t.start()
            start = snapshot(t)
            print(f"start: RSS {start['rss']:.1f} MiB, Go heap in use {start['heap_inuse']:.1f} MiB", flush=True)
            done = 0
            t0 = time.monotonic()
            while done < args.requests:
                done += wrk(t.port("web"), args.round, args.conns)
                s = snapshot(t)
                print(f"{done:>9} requests: RSS {s['rss']:.1f} MiB, Go heap in use {s['heap_inuse']:.1f} MiB, "
                      f"Go Sys {s['sys']:.1f} MiB, GCs {s['num_gc']:.0f}; FIFO {reader.bytes} bytes", flush=True)
            print(f"{done} requests in {time.monotonic() - t0:.0f}s; RSS {start['rss']:.1f} -> {s['rss']:.1f} MiB")
        finally:
            t.stop()
            backend.stop()
            reader.close()


if __name__ == "__main__":
    main()
