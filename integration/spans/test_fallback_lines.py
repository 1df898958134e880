"""One fallback line per request, with exact fields, in every Traefik log format.

A mixed load (hosts, methods, statuses, query strings, slow responses, sequential and
concurrent, and a client that gives up) goes through a router with the middleware; each
request has a unique path so every line maps to its request.
"""

from __future__ import annotations

import itertools
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from clients import Sent, record_problems, send
from harness import by_path

HOSTS = ["a.test", "b.test", "c.test", "c.test:8443"]
METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD"]
STATUSES = [200, 301, 404, 429, 500, 503]
SLOW_MS = 300
QUERIES = ["q=secret&token=abc", "utm_source=x&path=%2Fetc%2Fpasswd", "a=1?b=2"]


def plan() -> tuple[list[Sent], list[Sent], Sent]:
    """(sequential, concurrent, disconnecting) requests."""
    counter = itertools.count(1)
    sequential: list[Sent] = []
    for i, (method, status) in enumerate(itertools.product(METHODS, STATUSES)):
        n = next(counter)
        sequential.append(
            Sent(n, method, HOSTS[i % len(HOSTS)], f"/r/{n}", query=QUERIES[i % 3] if i % 2 else "", status=status)
        )
    n = next(counter)
    sequential.append(Sent(n, "GET", "a.test", f"/r/{n}", status=200, delay_ms=SLOW_MS, query="slow=1"))
    n = next(counter)
    sequential.append(Sent(n, "POST", "b.test", f"/r/{n}", status=503, delay_ms=SLOW_MS))

    concurrent: list[Sent] = []
    for i in range(24):
        n = next(counter)
        concurrent.append(
            Sent(
                n,
                METHODS[i % len(METHODS)],
                HOSTS[(i + 1) % len(HOSTS)],
                f"/r/{n}",
                query=QUERIES[i % 3] if i % 3 == 0 else "",
                status=STATUSES[(i * 7) % len(STATUSES)],
                delay_ms=SLOW_MS if i in (5, 17) else 0,
            )
        )
    n = next(counter)
    gone = Sent(n, "GET", "a.test", f"/r/{n}", delay_ms=2000, disconnect=True, client_timeout=0.3)
    return sequential, concurrent, gone


@pytest.mark.parametrize(
    ("log_format", "no_color"),
    [("json", False), ("common", False), ("common", True)],
    ids=["json", "console-color", "console-nocolor"],
)
def test_one_exact_line_per_request(traefik_factory, log_format: str, no_color: bool) -> None:
    t = traefik_factory(log_format=log_format, no_color=no_color)
    port = t.port("web")

    sequential, concurrent, gone = plan()
    for req in sequential:
        send(port, req)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda r: send(port, r), concurrent))
    send(port, gone)
    # Traffic on the route without the middleware must not produce lines.
    bare = [send(t.port("bare"), Sent(1000 + i, "GET", "a.test", f"/bare/{i}")) for i in range(3)]

    sent = sequential + concurrent
    # The middleware must not change what the client gets.
    for req in sent + bare:
        want_body = b"" if req.method == "HEAD" else f"{req.method} {req.path}\n".encode()
        assert (req.got_status, req.got_body, req.got_headers.get("X-Backend")) == (req.status, want_body, "1"), (
            f"response to {req.method} {req.target()} changed"
        )
        if req.status == 301:
            assert req.got_headers.get("Location") == "/moved"
    assert gone.got_body == b"", "the abandoned request must not have been answered within the client timeout"

    all_reqs = sent + [gone]
    records = t.wait_records([r.path for r in all_reqs], settle=0.5)
    grouped = by_path(records)

    # Exactly one line per request, and none for anything else.
    counts = {r.path: len(grouped.get(r.path, [])) for r in all_reqs}
    assert {p: c for p, c in counts.items() if c != 1} == {}, "requests without exactly one line"
    expected_paths = {r.path for r in all_reqs}
    unexpected = [rec.text for rec in records if rec.data.get("RequestPath") not in expected_paths]
    assert unexpected == [], "lines for requests not sent through the middleware"
    assert len(records) == len(all_reqs)

    problems: list[str] = []
    for req in all_reqs:
        rec = grouped[req.path][0]
        for prob in record_problems(rec, req):
            problems.append(f"{req.method} {req.host_header} {req.target()}: {prob}\n    line: {rec.line[:400]!r}")
        if rec.data.get("dd.sampling_priority") != 1:
            problems.append(f"{req.path}: dd.sampling_priority={rec.data.get('dd.sampling_priority')!r}, want 1")
    assert problems == [], "\n".join(problems)

    # Ids are unique across every line of this Traefik (readiness probes included).
    everything = t.records(include_ready=True)
    spans = Counter(r.data["dd.span_id"] for r in everything)
    traces = Counter((r.data["dd.trace_id_high"], r.data["dd.trace_id"]) for r in everything)
    lows = Counter(r.data["dd.trace_id"] for r in everything)
    assert [s for s, c in spans.items() if c > 1] == []
    assert [s for s, c in traces.items() if c > 1] == []
    assert [s for s, c in lows.items() if c > 1] == []

    # The query string never leaks into the line.
    for rec in records:
        for q in QUERIES + ["status=", "delay_ms="]:
            assert q.split("=")[0] + "=" not in rec.text, f"query text {q!r} leaked: {rec.text}"
