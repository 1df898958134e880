"""Traefik for memory measurements across dynamic-configuration reloads: its API's debug
endpoints (expvar memstats, forced collections), rule rewrites that force a rebuild of every
router, traffic after each, and a FIFO reader for pipe mode. Used by test_reload_memory.py and
scripts/reload_memory.py, scripts/request_memory.py."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import requests

from harness import Traefik, free_port


class ReloadTraefik(Traefik):
    """Traefik with its API (debug: expvar memstats) on a port of its own, and env overrides."""

    def __init__(self, *args: Any, env: dict[str, str] | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.api_port = free_port()
        self.extra_env = dict(env or {})

    def static_config(self) -> dict[str, Any]:
        cfg = super().static_config()
        cfg["entryPoints"]["traefik"] = {"address": f"127.0.0.1:{self.api_port}"}
        cfg["api"] = {"insecure": True, "debug": True, "dashboard": False}
        return cfg

    def start(self, timeout: float = 60.0) -> "ReloadTraefik":
        saved = {k: os.environ.get(k) for k in self.extra_env}
        os.environ.update(self.extra_env)
        try:
            super().start(timeout)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return self

    def rss_mib(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def memstats(self) -> dict[str, Any]:
        r = requests.get(f"http://127.0.0.1:{self.api_port}/debug/vars", timeout=10)
        return r.json()["memstats"]

    def force_gc(self) -> None:
        # /debug/pprof/heap?gc=1 runs a collection before writing the profile.
        requests.get(f"http://127.0.0.1:{self.api_port}/debug/pprof/heap?gc=1", timeout=30)


def mib(n: float) -> float:
    return n / (1 << 20)


def snapshot(t: ReloadTraefik) -> dict[str, float]:
    m = t.memstats()
    return {"rss": t.rss_mib(), "heap_inuse": mib(m["HeapInuse"]), "heap_sys": mib(m["HeapSys"]),
            "sys": mib(m["Sys"]), "num_gc": m["NumGC"]}


def reload_and_wait(t: ReloadTraefik, routers: list[str], n: int, timeout: float = 60.0) -> None:
    """Rewrites the rules to PathPrefix(`/r<n>/`) and waits until a request under it is routed."""
    for name in routers:
        t.routes[name].rule = f"PathPrefix(`/r{n}/`)"
    t.rewrite_dynamic()
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{t.url(routers[-1])}/r{n}/probe", timeout=5).status_code != 404:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"reload {n} not applied after {timeout}s")
        time.sleep(0.05)


def traffic(t: ReloadTraefik, routers: list[str], n: int, per_reload: int, concurrency: int = 1,
            unrouted_total: list[int] | None = None) -> int:
    """`per_reload` requests per router from each of `concurrency` clients at once (as many
    concurrent requests, so as many module instances in the handler's pool). Returns how many
    answers were not the backend's 200 (Traefik's own "404 page not found" left out: counted in
    ``unrouted`` when a list is given)."""
    bad = [0] * concurrency
    unrouted = [0] * concurrency

    def client(c: int) -> None:
        with requests.Session() as s:
            for name in routers:
                for i in range(per_reload):
                    r = s.get(f"{t.url(name)}/r{n}/c{c}/t{i}", headers={"Host": "a.test"}, timeout=30)
                    if r.status_code == 404 and r.text == "404 page not found\n":
                        # Traefik's router, not the backend: with `watch: true` the file
                        # provider can apply the previous file's rules once more just after
                        # the new ones (a routing artefact of rewriting the file quickly).
                        unrouted[c] += 1
                    elif r.status_code != 200 or r.headers.get("X-Backend") != "1":
                        bad[c] += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if unrouted_total is not None:
        unrouted_total.append(sum(unrouted))
    return sum(bad)


class FifoReader:
    """Drains a FIFO in a thread, counting bytes (the relay's place, not measured here)."""

    def __init__(self, path: Path):
        os.mkfifo(path)
        self.bytes = 0
        # Read-write: the reader never sees end-of-file while writers come and go.
        self.fd = os.open(path, os.O_RDWR)
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop:
            self.bytes += len(os.read(self.fd, 1 << 16))

    def close(self) -> None:
        self._stop = True
        os.write(self.fd, b"\n")
        self._t.join(2)
        os.close(self.fd)
