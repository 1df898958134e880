"""Instructions per request in Traefik, bare and with the plugin, under callgrind.

Throughput on a shared 2-core machine moves by +-10% between minutes, which
hides differences of a few percent. Callgrind counts the instructions Traefik
executes (Go code and the guest's compiled wasm alike; not the kernel's), and
the count repeats for the same binaries and requests. Each variant of
scripts/bench.py gets its own Traefik under callgrind; after a warm-up the
counters are zeroed, N sequential keep-alive requests are sent, and the
counters are dumped. The count includes Traefik's background work over the
run's wall time (GC, timers), so compare variants at the same -n only, on an
otherwise idle machine: bare measured 205,807 and 221,720 at -n 2000 on idle
machines, 246,256 and 553,573 with builds running beside it, while the
plugin's variants repeat within ~2,000 (pipe: 389,517-391,179).

Usage: .venv/bin/python scripts/host_cost.py [-n 2000] [variant ...]
(variants: names from scripts/bench.py VARIANTS; default: bare, pipe, log)
"""

from __future__ import annotations

import argparse
import glob
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402

DEFAULT = ["bare", "pipe (drain reader)", "log (json format)", "guest only (log, level ERROR)"]


def load(port: int, n: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for _ in range(n):
        conn.request("GET", "/bench", headers={"Host": "a.test", "User-Agent": "bench/1", "Accept": "*/*"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"status {resp.status}")
    conn.close()


# Traefik's start under callgrind takes minutes, many more on a busy machine.
START_TIMEOUT = 900


def wait_routes(port: int, timeout: float = START_TIMEOUT) -> None:
    """Under callgrind Traefik listens long before its routes are loaded."""
    end = time.time() + timeout
    while True:
        try:
            load(port, 1)
            return
        except (RuntimeError, OSError):
            if time.time() > end:
                raise
            time.sleep(1)


def total(path: str) -> int:
    for line in open(path, errors="replace"):
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    return 0


def measure(tmp: Path, tag: str, name: str, backend_port: int, n: int) -> float:
    fmt, plugin, reader = bench.VARIANTS[name]
    out = f"{tmp}/callgrind-{tag}"
    os.environ["CALLGRIND_OUT"] = out
    started = bench.start_variant(tmp / f"v{tag}", fmt, plugin, reader, backend_port)
    if started is None:
        raise RuntimeError("variant could not start")
    port, procs = started
    try:
        wait_routes(port)
        load(port, 500)
        pid = str(procs[-1].pid)
        subprocess.run(["callgrind_control", "-z", pid], capture_output=True, check=True)
        load(port, n)
        subprocess.run(["callgrind_control", "-d", pid], capture_output=True, check=True)
    finally:
        bench.stop(procs)
    dumps = sorted(glob.glob(out + ".*[0-9]"))
    if not dumps:
        raise RuntimeError("no callgrind dump")
    return total(dumps[0]) / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=2000, help="requests counted per variant")
    ap.add_argument("--keep", metavar="DIR", help="copy each variant's callgrind dump here "
                    "(per-function costs: callgrind_annotate --inclusive=yes)")
    ap.add_argument("variants", nargs="*", default=DEFAULT)
    args = ap.parse_args()
    if not shutil.which("valgrind"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "valgrind"], check=True)
    bench.ensure_tools()
    traefik = bench.TRAEFIK
    with tempfile.TemporaryDirectory() as tmp:
        wrapper = Path(tmp) / "traefik-under-callgrind"
        # Go's async preemption signals trip callgrind's signal bookkeeping.
        wrapper.write_text(
            "#!/bin/sh\nGODEBUG=asyncpreemptoff=1 exec valgrind --tool=callgrind --smc-check=all "
            f'--callgrind-out-file="$CALLGRIND_OUT" {traefik} "$@" 2>"$CALLGRIND_OUT.log"\n')
        wrapper.chmod(0o755)
        bench.TRAEFIK = str(wrapper)
        wait = bench.wait_port
        bench.wait_port = lambda port, timeout=START_TIMEOUT: wait(port, START_TIMEOUT)
        backend_port = bench.free_port()
        backend = subprocess.Popen([str(bench.BACKEND), f"127.0.0.1:{backend_port}"], stdout=subprocess.DEVNULL)
        bench.wait_port(backend_port)
        rows = []
        try:
            for i, name in enumerate(args.variants):
                # Traefik under callgrind now and then stops answering (its
                # threads are serialised and preemption is off): start again.
                for attempt in range(3):
                    try:
                        per = measure(Path(tmp), f"{i}-{attempt}", name, backend_port, args.n)
                        break
                    except (OSError, RuntimeError) as e:
                        print(f"{name}: attempt {attempt + 1} failed ({e}); again", flush=True)
                else:
                    continue
                rows.append((name, per))
                if args.keep:
                    os.makedirs(args.keep, exist_ok=True)
                    dump = sorted(glob.glob(f"{tmp}/callgrind-{i}-{attempt}.*[0-9]"))[0]
                    shutil.copy(dump, Path(args.keep) / f"{i}-{name.split()[0]}.callgrind")
                print(f"{name:34s} {per:10.0f} instructions/request", flush=True)
        finally:
            backend.kill()
    base = dict(rows).get("bare")
    print("\n| variant | instructions per request | added to bare |\n|---|---|---|")
    for name, per in rows:
        extra = f"+{per - base:,.0f}" if base and name != "bare" else "-"
        print(f"| {name} | {per:,.0f} | {extra} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
