"""What one request costs the guest, counted exactly: its own wasm operations, its host calls,
and its instance's memory, for the shipped plugin.wasm under wasmtime with fuel metering and a
stand-in for the http-wasm host (`scripts/guest_fuel.py`). Fuel counts repeat exactly for the
same module and requests whatever the machine is doing, so these are bounds, not timings.

Traefik's own cost of the same request (its Go side and the wazero crossings) is measured by
`make bench` and `make host-cost`, see docs/benchmarks.md and docs/host-calls.md.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from harness import DEFAULT_PLUGIN_DIR

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import guest_fuel  # noqa: E402

# The host calls of a buffered `pipe` request with the default config (datadog + tracecontext
# injection): docs/host-calls.md gives the reason for each. The clock and the FIFO write are WASI
# calls, not counted here.
DEFAULT_CALLS = {
    "enable_features": 1,  # buffer the response, to read its status
    "get_header_names": 1,  # which headers are present: absent ones cost no call
    "get_header_values": 5,  # Host, X-Forwarded-Proto, User-Agent, Accept; response Content-Length
    "get_method": 1,
    "get_source_addr": 1,
    "get_status_code": 1,
    "get_uri": 1,
    "set_header_value": 6,  # x-datadog-trace-id, -parent-id, -sampling-priority, -tags, traceparent, tracestate
}
# 20,621 measured for the module this bound was set on; the bound leaves room for small changes
# and catches a return of the costs removed before (69,382 per request).
MAX_OPS = 26_000

# Requests of every usual shape: the bench's, one continuing a Datadog trace, one a W3C one,
# one with stale B3 headers to remove, and one with a long User-Agent and a query.
BASE = [(k, v) for k, v in guest_fuel.REQUEST_HEADERS if k != "User-Agent"]
REQUESTS = [
    guest_fuel.REQUEST_HEADERS,
    BASE + [("User-Agent", "curl/8"), ("X-Datadog-Trace-Id", "1234567890123"), ("X-Datadog-Parent-Id", "42"),
            ("X-Datadog-Sampling-Priority", "1"), ("X-Datadog-Tags", "_dd.p.dm=-4,_dd.p.tid=66d8a5d200000000")],
    BASE + [("User-Agent", "otel/1"), ("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("Tracestate", "dd=s:1;t.dm:-0,congo=t61rcWkgMzE")],
    BASE + [("User-Agent", "b3/1"), ("X-B3-Traceid", "463ac35c9f6413ad"), ("X-B3-Spanid", "a2fb4a1d1a96d312"),
            ("B3", "463ac35c9f6413ad-a2fb4a1d1a96d312-1")],
    BASE + [("User-Agent", "Mozilla/5.0 " + "x" * 300)],
]


def plugin() -> str:
    path = Path(os.environ.get("PLUGIN_DIR") or DEFAULT_PLUGIN_DIR) / "plugin.wasm"
    if not path.is_file():
        pytest.fail(f"{path} not built (make build)")
    return str(path)


def test_default_request_costs_few_operations_and_only_the_needed_calls() -> None:
    cost = guest_fuel.measure(plugin(), 200)
    print(f"{cost.ops:,.0f} wasm operations per request (request side {cost.request_ops:,.0f}, "
          f"response side {cost.response_ops:,.0f})")
    assert cost.frames == 200
    assert cost.calls == DEFAULT_CALLS
    assert cost.ops <= MAX_OPS


def test_instances_stay_at_their_initial_three_pages() -> None:
    # An instance whose memory grows past its first pages costs Traefik far more than the page
    # (a c=256 burst measured ~70 MiB more RSS): the usual requests must fit the initial heap.
    cost = guest_fuel.measure(plugin(), 500, requests=REQUESTS)
    assert cost.frames == 500
    assert (cost.start_pages, cost.end_pages) == (3, 3)


def test_protocol_is_read_only_for_a_log_line() -> None:
    # Only the fallback line shows the protocol version: a record that goes through the FIFO does
    # not ask for it, one that becomes a line (no FIFO in log mode) does.
    piped = guest_fuel.measure(plugin(), 50)
    logged = guest_fuel.measure(plugin(), 50, config=json.dumps({"service": "edge", "mode": "log"}))
    assert "get_protocol_version" not in piped.calls
    assert logged.calls["get_protocol_version"] == 1
    assert logged.calls["log"] == 1
