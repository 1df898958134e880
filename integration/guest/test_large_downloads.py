"""Large downloads are never held in Traefik's memory because of the plugin (default config).

One Traefik (routes ``web`` through the plugin in pipe mode with the relay, ``bare`` without),
the relay with its default ``--learn-bytes`` (1 MiB):
- four concurrent 200 MiB downloads of a download-like path (``.iso``) grow Traefik's peak RSS
  by at most 128 MiB, their first byte comes within 5x the same four on the bare route (plus a
  fixed allowance for scheduling on a busy machine), every byte arrives, and each becomes one span
  with its size and an honest unknown status;
- a path without such an extension is buffered the first time (its span has status 200); once
  the relay has seen one response of the route larger than 1 MiB it publishes the route, and four
  concurrent 200 MiB downloads under it behave like the download-like path;
- a Range request streams too and gets 206 from ``Content-Range``.
"""

from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from datadog import spans_by_path
from harness import Route
from pipeline import Pipeline, start_pipe_pipeline

SIZE = 200 << 20
MAX_RSS_GROWTH = 128 << 20
TTFB_FACTOR = 5
# First bytes come in milliseconds; a buffered 200 MiB body takes over a second. What a loaded
# machine adds to four concurrent first bytes is allowed on top of the factor.
TTFB_ALLOWANCE = 0.2
CHECK_EVERY = 2.0  # tdp_core::transport::watch::CHECK_EVERY_NS


@pytest.fixture(scope="module")
def pipe(tmp_path_factory, module_traefik_factory) -> Pipeline:
    tmp = tmp_path_factory.mktemp("large")
    p = start_pipe_pipeline(tmp, module_traefik_factory, routes=[Route("web", ["dd"]), Route("bare")])
    yield p
    p.relay.stop()
    p.agent.stop()
    p.statsd.close()


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{key} missing for pid {pid}")


class PeakRss:
    """Traefik's peak RSS over a block: the kernel's high-water mark, reset at the start."""

    def __init__(self, pid: int):
        self.pid = pid

    def __enter__(self) -> "PeakRss":
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        self.start = _status_kib(self.pid, "VmRSS") << 10
        return self

    def __exit__(self, *exc: Any) -> None:
        self.peak = _status_kib(self.pid, "VmHWM") << 10

    @property
    def growth(self) -> int:
        return self.peak - self.start


def download(port: int, target: str, host: str, out: dict[str, Any]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        t0 = time.monotonic()
        conn.request("GET", target, headers={"Host": host})
        resp = conn.getresponse()
        first = resp.read(1)
        out["ttfb"] = time.monotonic() - t0
        n = len(first)
        while chunk := resp.read(1 << 20):
            n += len(chunk)
        out.update(status=resp.status, bytes=n)
    finally:
        conn.close()


def four_downloads(port: int, targets: list[str], host: str) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = [{} for _ in targets]
    threads = [threading.Thread(target=download, args=(port, t, host, r)) for t, r in zip(targets, results)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(r.get("bytes") == SIZE and r.get("status") == 200 for r in results), results
    return results


def ttfb(results: list[dict[str, Any]]) -> float:
    return max(r["ttfb"] for r in results)


def wait_spans(p: Pipeline, paths: list[str], timeout: float = 30.0) -> dict[str, list[dict[str, Any]]]:
    deadline = time.monotonic() + timeout
    while True:
        got = spans_by_path(p.agent, "/")
        if all(path in got for path in paths) or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def check_streamed_spans(p: Pipeline, paths: list[str]) -> None:
    spans = wait_spans(p, paths)
    for path in paths:
        assert len(spans.get(path, [])) == 1, (path, spans.get(path))
        s = spans[path][0]
        # Not buffered and no probe: the status is unknown, not guessed; the size is known.
        assert "http.status_code" not in s["meta"], s["meta"]
        assert s["metrics"]["http.response.content_length"] == SIZE
        assert s["error"] == 0


def check_four_stream(pipe: Pipeline, label: str, paths: list[str], host: str) -> None:
    """Four concurrent downloads of ``paths`` through the plugin, after the same four on the bare
    route (which records nothing): Traefik's peak RSS, first bytes, and one streamed span each."""
    t = pipe.traefik
    assert t.proc is not None
    targets = [f"{p}?size={SIZE}" for p in paths]
    bare = four_downloads(t.port("bare"), targets, host)
    with PeakRss(t.proc.pid) as rss:
        got = four_downloads(t.port("web"), targets, host)
    print(f"{label}: rss growth {rss.growth / 2**20:.1f} MiB, ttfb {ttfb(got) * 1000:.1f} ms "
          f"(bare {ttfb(bare) * 1000:.1f} ms)")
    assert rss.growth <= MAX_RSS_GROWTH, f"Traefik grew {rss.growth / 2**20:.1f} MiB"
    assert ttfb(got) <= TTFB_FACTOR * ttfb(bare) + TTFB_ALLOWANCE
    check_streamed_spans(pipe, paths)


def test_download_like_paths_stream(pipe: Pipeline) -> None:
    check_four_stream(pipe, "download-like", [f"/files/big-{i}.iso" for i in range(4)], "dl.test")


def test_learned_route_streams(pipe: Pipeline) -> None:
    t = pipe.traefik
    assert t.proc is not None
    routes_file = pipe.fifo.parent / "traefik-datadog.routes"
    seed = "/export/seed"
    got: dict[str, Any] = {}
    download(t.port("web"), f"{seed}?size=2000000", "learn.test", got)
    assert (got["status"], got["bytes"]) == (200, 2_000_000)
    spans = wait_spans(pipe, [seed])
    # The first response of the route was buffered: its status is exact.
    assert spans[seed][0]["meta"]["http.status_code"] == "200"
    assert spans[seed][0]["metrics"]["http.response.content_length"] == 2_000_000
    pipe.relay.wait_log("learned a large route: learn.test /export/", timeout=30)
    published = routes_file.read_text().splitlines()
    assert published[0] == "traefik-datadog routes 1"
    assert "learn.test\t/export/" in published[1:], published
    # Every pooled instance looks at the file again on its first request after this interval.
    time.sleep(CHECK_EVERY + 0.5)

    check_four_stream(pipe, "learned", [f"/export/big-{i}" for i in range(4)], "learn.test")


def test_range_requests_stream_with_their_status(pipe: Pipeline) -> None:
    t = pipe.traefik
    conn = http.client.HTTPConnection("127.0.0.1", t.port("web"), timeout=30)
    conn.request("GET", "/media/clip?size=5000", headers={"Host": "range.test", "Range": "bytes=100-199"})
    resp = conn.getresponse()
    assert (resp.status, len(resp.read()), resp.getheader("Content-Range")) == (206, 100, "bytes 100-199/5000")
    conn.close()
    spans = wait_spans(pipe, ["/media/clip"])
    s = spans["/media/clip"]
    assert len(s) == 1
    assert s[0]["meta"]["http.status_code"] == "206"
    assert s[0]["metrics"]["http.response.content_length"] == 100
