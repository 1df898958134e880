"""Dynamic-configuration reloads with a router using the module (pipe mode, the production setup)
do not leak: what each rebuild allocates is given back once Go collects it.

Traefik builds a new wazero runtime, compiled module and instance pool per router on every reload
and closes the old ones from a finalizer on the old handler (traefik#11119), so their memory is
freed only two collections after the handler became unreachable. Between collections the Go heap
grows with the reloads (measured: ~2 MiB per reload at 16 concurrent requests after each); the
test prints that growth and asserts that forced collections bring the heap back to within 8 MiB
of where it started (measured: back to the start, ±1 MiB). See docs/memory.md.

Real Traefik 3.7.15 (file provider `watch: true`, its API's debug endpoints for memstats and
collections), the plugin in pipe mode with a mounted FIFO, the aiohttp backend.
"""

from __future__ import annotations

import time

from harness import DD_CONFIG, Backend, Route
from reloads import FifoReader, ReloadTraefik, reload_and_wait, snapshot, traffic

RELOADS = 30
CONCURRENCY = 16
RELEASED_WITHIN_MIB = 8.0


def test_reload_memory_released(tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    reader = FifoReader(run_dir / "traefik-datadog.fifo")
    backend = Backend(tmp_path / "backend.log")
    conf = {**DD_CONFIG, "mode": "pipe", "pipePath": "/run/dd/traefik-datadog.fifo"}
    t = ReloadTraefik(tmp_path / "traefik", backend, routes=[Route("web", ["dd"])], middlewares={"dd": conf},
                      mounts=[f"{run_dir}:/run/dd"], watch=True, log_level="ERROR")
    try:
        t.start()
        assert traffic(t, ["web"], 0, 5, CONCURRENCY) == 0
        t.force_gc()
        start = snapshot(t)
        bad, unrouted = 0, []
        for n in range(1, RELOADS + 1):
            reload_and_wait(t, ["web"], n)
            bad += traffic(t, ["web"], n, 5, CONCURRENCY, unrouted)
        grown = snapshot(t)
        # Collections until the closed runtimes are gone: the first runs the finalizers (which
        # close the old runtimes), a later one frees what they held.
        deadline = time.monotonic() + 120
        while True:
            t.force_gc()
            after = snapshot(t)
            if after["heap_inuse"] <= start["heap_inuse"] + RELEASED_WITHIN_MIB or time.monotonic() > deadline:
                break
            time.sleep(1)
        with capsys.disabled():
            print(f"\n{RELOADS} reloads at c={CONCURRENCY}: Go heap in use {start['heap_inuse']:.1f} -> "
                  f"{grown['heap_inuse']:.1f} MiB ({(grown['heap_inuse'] - start['heap_inuse']) / RELOADS:.2f} MiB per "
                  f"reload, {grown['num_gc'] - start['num_gc']:.0f} collections) -> {after['heap_inuse']:.1f} MiB after "
                  f"forced collections; RSS {start['rss']:.1f} -> {grown['rss']:.1f} -> {after['rss']:.1f} MiB; "
                  f"FIFO {reader.bytes} bytes; Traefik 404s while its router switched: {sum(unrouted)}")
        assert bad == 0
        assert reader.bytes > 0
        assert after["heap_inuse"] <= start["heap_inuse"] + RELEASED_WITHIN_MIB, (start, grown, after)
    finally:
        t.stop()
        backend.stop()
        reader.close()
