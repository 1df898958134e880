"""A bad middleware configuration: one error line naming the key, traffic untouched, no
records, and the other plugin instances of the same Traefik unaffected."""

from __future__ import annotations

from typing import Any

import pytest

import lines
from clients import Sent, http_get, record_problems, send
from harness import DD_CONFIG, Route

def nested(depth: int) -> dict[str, Any]:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


CASES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown-key", {"service": "edge", "bogus": 1}, "bogus"),
    ("wrong-type-port", {"statsdPort": "abc"}, "statsdPort"),
    ("negative-sample-rate", {"sampleRate": -0.5}, "sampleRate"),
    ("empty-service", {"service": ""}, "service"),
    ("bad-resource-from", {"service": "edge", "resourceFrom": "path"}, "resourceFrom"),
    ("bad-error-statuses", {"service": "edge", "errorStatuses": "5xx"}, "errorStatuses"),
    ("sample-rate-above-one", {"sampleRate": "1.5"}, "sampleRate"),
    # The guest's deepest stack use: a config nested just under serde_json's recursion limit
    # (128) parses into a value before the key is refused; past it, parsing stops. Neither
    # may overflow the guest's stack (build.rs) into a trap.
    ("nested-under-json-limit", {"service": "edge", "deep": nested(120)}, "deep"),
    ("nested-past-json-limit", {"service": "edge", "deep": nested(200)}, "(config)"),
]

# (method, target, Host header): what goes through the bad middleware and, for comparison,
# the bare route.
TRAFFIC = [
    ("GET", "/x/1", "a.test"),
    ("GET", "/x/2?status=503", "b.test"),
    ("POST", "/x/3?status=404", "a.test"),
    ("GET", "/x/4?status=301", "c.test"),
    ("HEAD", "/x/5", "a.test"),
    ("DELETE", "/x/6?status=500&delay_ms=50", "b.test"),
]
COMPARED_HEADERS = ("X-Backend", "Location", "Content-Type", "Content-Length")
REQUESTS_THROUGH_BAD = len(TRAFFIC) + 2  # plus the readiness probe and one more request
MAX_CONFIG_ERROR_LINES = 4


def run_case(traefik_factory, config: dict[str, Any], key: str, log_format: str = "json", no_color: bool = False) -> None:
    t = traefik_factory(
        middlewares={"bad": config, "dd": dict(DD_CONFIG)},
        routes=[Route("badr", ["bad"]), Route("good", ["dd"]), Route("bare")],
        log_format=log_format,
        no_color=no_color,
    )

    # Traffic through the bad middleware gets exactly what the bare route gets.
    for method, target, host in TRAFFIC:
        via_bad = http_get(t.port("badr"), target, headers={"Host": host}, method=method)
        via_bare = http_get(t.port("bare"), target, headers={"Host": host}, method=method)
        assert via_bad[0] == via_bare[0], f"{method} {target}: status changed"
        assert via_bad[2] == via_bare[2], f"{method} {target}: body changed"
        for h in COMPARED_HEADERS:
            assert via_bad[1].get(h) == via_bare[1].get(h), f"{method} {target}: header {h} changed"
    assert http_get(t.port("badr"), "/x/7?status=503", headers={"Host": "a.test"})[:3:2] == (503, b"GET /x/7\n")

    # The router with a good configuration of the same plugin still records.
    good = send(t.port("good"), Sent(1, "GET", "g.test", "/g/1", status=503))
    assert good.got_status == 503
    recs = t.wait_records(["/g/1"])
    good_recs = [r for r in recs if r.data.get("RequestPath") == "/g/1"]
    assert len(good_recs) == 1
    assert record_problems(good_recs[0], good, router="good@file", entrypoint="good") == []

    # The bad one records nothing, not even the readiness probes.
    everything = t.records(include_ready=True)
    assert [r.text for r in everything if r.host.get("middlewareName") == "bad@file"] == []
    assert [r.text for r in everything if r.host.get("routerName") == "badr@file"] == []

    # The error line, naming the key. The guest validates its config in `_start`, which every
    # new wasm instance runs (Traefik 3.7.15: one instance when the handler is built, one more
    # at the first request, more under concurrency or after Go's GC empties the instance
    # pool), so the same line appears once per instance: a few times, never once per request.
    assert t.wait_until(lambda: len(t.config_errors()) >= 1), "no config error line"
    errors = t.config_errors()
    assert len({e.text for e in errors}) == 1, f"config error lines differ: {[e.text for e in errors]}"
    assert 1 <= len(errors) <= MAX_CONFIG_ERROR_LINES, (
        f"{len(errors)} config error lines for {REQUESTS_THROUGH_BAD} sequential requests: {[e.line for e in errors]}"
    )
    for e in errors:
        assert e.host.get("level") == "error", e.line
        assert e.host.get("middlewareName") == "bad@file", e.line
        assert e.host.get("routerName") == "badr@file", e.line
    err = errors[0]
    assert err.text.startswith(lines.CONFIG_ERROR_PREFIX)
    assert "routerName=" not in err.text and "\x1b" not in err.text, f"host fields left in the text: {err.text!r}"
    assert f'"{key}"' in err.text, f"error line does not name {key!r}: {err.text}"
    if key not in ("bogus", "deep"):
        assert "unknown key" not in err.text, err.text

    out = t.output()
    assert "Plugins are disabled" not in out
    assert "panic" not in out.lower(), "a panic in Traefik's output"


@pytest.mark.parametrize(("config", "key"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config_passes_traffic_through(traefik_factory, config: dict[str, Any], key: str) -> None:
    run_case(traefik_factory, config, key)


@pytest.mark.parametrize("no_color", [False, True], ids=["console-color", "console-nocolor"])
def test_bad_config_error_line_in_console_format(traefik_factory, no_color: bool) -> None:
    run_case(traefik_factory, {"service": "edge", "bogus": 1}, "bogus", log_format="common", no_color=no_color)
