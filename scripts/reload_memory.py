#!/usr/bin/env python3
"""Traefik's memory across dynamic-configuration reloads, with and without this module.

The real Traefik (file provider, `watch: true`) is started with one router; the dynamic
configuration is rewritten RELOADS times (the router's rule changes, so every reload rebuilds the
routers and their middlewares), and a few requests go through after each reload. Traefik's RSS
and its Go runtime figures (from the `/debug/vars` expvar of its API, `memstats`) are sampled
after each reload, then again after an idle wait with forced collections (`/debug/pprof` is not
needed: the memstats say whether the growth is Go heap or memory outside it).

Variants (each in its own Traefik):
  plugin   - the router uses this module (log mode: no relay needed; same module, same build path)
  pipe     - the same in pipe mode: settings.mounts and a FIFO (drained by a reader thread)
  floor    - the same module given an invalid config (the guest passes requests through)
  bare     - no middleware at all

Usage: PLUGIN_DIR=... python scripts/reload_memory.py [--reloads 60] [--variants plugin,floor,bare]
          [--gogc 100] [--gomemlimit 200MiB] [--routers 1] [--concurrency 1] [--wait 20]
Prints one table line per variant: RSS start, after the reloads, after the idle wait, per reload.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))

from harness import Backend, Route  # noqa: E402
from reloads import FifoReader, ReloadTraefik, reload_and_wait, snapshot, traffic  # noqa: E402

VARIANTS: dict[str, dict[str, Any] | None] = {
    "plugin": {"service": "edge", "mode": "log"},
    # The production mode: a mounted dir (settings.mounts) with the FIFO, drained by a reader.
    "pipe": {"service": "edge", "mode": "pipe", "pipePath": "/run/dd/traefik-datadog.fifo"},
    "floor": {"mode": "invalid-on-purpose"},
    "bare": None,
}


def run_variant(name: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    conf = VARIANTS[name]
    work = tmp / name
    work.mkdir()
    backend = Backend(work / "backend.log")
    routers = [f"web{i}" for i in range(args.routers)]
    env = {}
    if args.gogc:
        env["GOGC"] = args.gogc
    if args.gomemlimit:
        env["GOMEMLIMIT"] = args.gomemlimit
    mounts, reader = [], None
    if name == "pipe":
        run_dir = work / "run"
        run_dir.mkdir()
        reader = FifoReader(run_dir / "traefik-datadog.fifo")
        mounts = [f"{run_dir}:/run/dd"]
    t = ReloadTraefik(work / "traefik", backend, routes=[Route(r, ["dd"] if conf is not None else []) for r in routers],
                      middlewares={"dd": conf} if conf is not None else None, watch=True, env=env,
                      log_level="ERROR", mounts=mounts)
    try:
        t.start()
        traffic(t, routers, 0, args.per_reload, args.concurrency)
        start = snapshot(t)
        series = []
        t0 = time.monotonic()
        for n in range(1, args.reloads + 1):
            reload_and_wait(t, routers, n)
            traffic(t, routers, n, args.per_reload, args.concurrency)
            if n % max(1, args.reloads // 10) == 0 or n == args.reloads:
                series.append((n, round(t.rss_mib(), 1)))
        spent = time.monotonic() - t0
        end = snapshot(t)
        # Idle: does the growth come back? Collections forced, then Go's scavenger gets time.
        for _ in range(3):
            t.force_gc()
            time.sleep(args.wait / 3)
        idle = snapshot(t)
        return {"variant": name, "start": start, "end": end, "idle": idle, "series": series,
                "per_reload_rss": (end["rss"] - start["rss"]) / args.reloads,
                "per_reload_rss_idle": (idle["rss"] - start["rss"]) / args.reloads,
                "per_reload_heap_idle": (idle["heap_inuse"] - start["heap_inuse"]) / args.reloads,
                "seconds": spent}
    finally:
        t.stop()
        backend.stop()
        if reader is not None:
            reader.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reloads", type=int, default=60)
    ap.add_argument("--variants", default="plugin,pipe,floor,bare")
    ap.add_argument("--routers", type=int, default=1, help="routers (each on its own entry point) using the middleware")
    ap.add_argument("--per-reload", type=int, default=5, help="requests per router and client after each reload")
    ap.add_argument("--concurrency", type=int, default=1, help="clients sending at once after each reload")
    ap.add_argument("--wait", type=float, default=20.0, help="idle seconds (with forced GCs) after the reloads")
    ap.add_argument("--gogc", default="")
    ap.add_argument("--gomemlimit", default="")
    ap.add_argument("--json", action="store_true", help="print the raw results as JSON too")
    args = ap.parse_args()
    results = []
    with TemporaryDirectory(prefix="reload-memory-") as d:
        for v in args.variants.split(","):
            r = run_variant(v, args, Path(d))
            results.append(r)
            s, e, i = r["start"], r["end"], r["idle"]
            print(f"{v:7s} reloads={args.reloads} routers={args.routers} GOGC={args.gogc or '-'} "
                  f"GOMEMLIMIT={args.gomemlimit or '-'} c={args.concurrency}: RSS {s['rss']:.1f} -> {e['rss']:.1f} MiB "
                  f"(idle+GC {i['rss']:.1f}); per reload {r['per_reload_rss']:.2f} MiB "
                  f"(idle {r['per_reload_rss_idle']:.2f}); Go heap in use {s['heap_inuse']:.1f} -> "
                  f"{e['heap_inuse']:.1f} -> {i['heap_inuse']:.1f} MiB, Go Sys {s['sys']:.1f} -> {i['sys']:.1f} MiB, "
                  f"GCs during the reloads {e['num_gc'] - s['num_gc']:.0f}; "
                  f"series {r['series']}; {r['seconds']:.0f}s", flush=True)
    if args.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
