"""A bounded mixed load: N requests over C keep-alive connections, every response checked.

Each request has a unique path (/load/<n>) so the spans and lines it produces map back to it.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

HOSTS = ["a.test", "b.test", "c.test"]
METHODS = ["GET", "GET", "POST", "PUT", "DELETE"]
STATUSES = [200, 200, 200, 201, 301, 404, 429, 500, 503]


@dataclass
class Planned:
    n: int
    method: str
    host: str
    status: int

    @property
    def path(self) -> str:
        return f"/load/{self.n}"


def plan(count: int, start: int = 0) -> list[Planned]:
    return [Planned(n, METHODS[n % len(METHODS)], HOSTS[(n // 3) % len(HOSTS)], STATUSES[(n * 7) % len(STATUSES)])
            for n in range(start, start + count)]


@dataclass
class LoadResult:
    sent: int = 0
    wrong: list[str] = field(default_factory=list)  # responses that differ from what the backend sends
    errors: list[str] = field(default_factory=list)  # connection errors
    started: float = 0.0
    ended: float = 0.0
    # path -> wall clock (time.time_ns()) when its response was read: the order in which the
    # plugin wrote the requests' records, to the few ms a response takes to reach the client.
    done_ns: dict[str, int] = field(default_factory=dict)


def run(port: int, requests: list[Planned], concurrency: int, rate: float = 0.0,
        check: Callable[[Planned, int, bytes], bool] | None = None) -> LoadResult:
    """Sends every request once; `concurrency` workers share the list. `rate` > 0 paces the whole
    load to that many requests per second (to keep it running across a planned outage). `check`
    judges a response (request, status, body) from another backend than backend.py."""
    result = LoadResult(started=time.monotonic())
    lock = threading.Lock()
    it = iter(enumerate(requests))

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                i, req = next(it, (0, None))
            if req is None:
                break
            if rate > 0:
                delay = result.started + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            try:
                conn.request(req.method, f"{req.path}?status={req.status}", headers={"Host": req.host})
                resp = conn.getresponse()
                body = resp.read()
                want = f"{req.method} {req.path}\n".encode()
                if not (check(req, resp.status, body) if check else
                        resp.status == req.status and body == want and resp.getheader("X-Backend") == "1"):
                    with lock:
                        result.wrong.append(f"{req.path}: {resp.status} {body[:80]!r}")
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    result.errors.append(f"{req.path}: {e!r}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            done = time.time_ns()
            with lock:
                result.sent += 1
                result.done_ns[req.path] = done
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.ended = time.monotonic()
    return result


class Background:
    """`run` in a thread, for tests that break something while the load goes on."""

    def __init__(self, port: int, requests: list[Planned], concurrency: int, rate: float = 0.0,
                 check: Callable[[Planned, int, bytes], bool] | None = None):
        self.result = LoadResult()
        self._thread = threading.Thread(target=self._go, args=(port, requests, concurrency, rate, check))
        self._thread.start()

    def _go(self, port: int, requests: list[Planned], concurrency: int, rate: float,
            check: Callable[[Planned, int, bytes], bool] | None) -> None:
        self.result = run(port, requests, concurrency, rate, check)

    def join(self) -> LoadResult:
        self._thread.join()
        return self.result
