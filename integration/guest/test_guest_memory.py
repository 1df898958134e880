"""A client cannot inflate Traefik's memory through the plugin: whatever a request carries, the
instance that served it keeps its initial 3 pages (192 KiB of linear memory, which wasm never
gives back), and the request is still recorded once.

The guest reads every value into 8 KiB on its stack (``core/src/request/host.rs``, ``READ_MAX``) and the
header names into 2 KiB beside it (``NAMES_MAX``, at most 64 names); a longer value is not read
(recorded as ``...`` or judged without it, and counted in ``unread_values``), a longer name list is
not kept (each needed header is then asked by name). Run on the shipped plugin.wasm under wasmtime
with the stand-in http-wasm host of ``scripts/guest_fuel.py``: each shape is the first request of a
fresh instance, then twenty more of the same.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from test_guest_cost import BASE, plugin

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import guest_fuel  # noqa: E402

PAGES = 3
READ_MAX = 8192  # core/src/request/host.rs: a value and its NUL terminators
NAMES_MAX = 2048
MIB = 1 << 20
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def with_header(name: str, value: str | bytes) -> list[tuple[str, str | bytes]]:
    return [(k, v) for k, v in BASE if k.lower() != name.lower()] + [(name, value)]


def names_of_length(total: int) -> list[tuple[str, str]]:
    """Headers whose name list (`Name\\0` each, BASE's included) is `total` bytes long."""
    used = sum(len(k) + 1 for k, _ in BASE) + len("User-Agent") + 1
    rest = total - used
    assert rest > 12
    # One long X- name to take the rest, counted with its NUL.
    return BASE + [("User-Agent", "m"), ("X-" + "n" * (rest - 3), "v")]


SHAPES: dict[str, list[tuple[str, str | bytes]]] = {
    "plain": guest_fuel.REQUEST_HEADERS,
    # One value at and around the read space (the value's NUL makes it one byte longer).
    **{f"User-Agent {n}": with_header("User-Agent", "u" * n) for n in (READ_MAX - 2, READ_MAX - 1, READ_MAX)},
    **{f"Accept {n}": with_header("Accept", "a" * n) for n in (2048, 4096, READ_MAX - 1, READ_MAX, MIB)},
    "User-Agent 1 MiB": with_header("User-Agent", "u" * MIB),
    "User-Agent 1 MiB not UTF-8": with_header("User-Agent", b"\xff" * MIB),
    "User-Agent 8 KiB not UTF-8": with_header("User-Agent", b"\xc3" * (READ_MAX - 1)),
    "Content-Type 1 MiB": with_header("Content-Type", "application/grpc" + "x" * MIB),
    "Upgrade 1 MiB": with_header("Upgrade", "w" * MIB),
    "Host 1 MiB": with_header("Host", "h" * MIB),
    "traceparent 8 KiB": with_header("Traceparent", "00-" + "a" * (READ_MAX - 4)),
    "tracestate 8 KiB of members": with_header(
        "Tracestate", ",".join(f"k{i}=" + "v" * 250 for i in range(31))[:READ_MAX - 1])
    + [("Traceparent", TRACEPARENT)],
    "tracestate 8 KiB not UTF-8": with_header("Tracestate", b"dd=s:1," + b"\xff" * (READ_MAX - 8))
    + [("Traceparent", TRACEPARENT)],
    "x-datadog-tags 8 KiB not UTF-8": with_header("X-Datadog-Tags", b"\xe2" * (READ_MAX - 1))
    + [("X-Datadog-Trace-Id", "1"), ("X-Datadog-Parent-Id", "2")],
    "x-datadog-tags 8 KiB": with_header("X-Datadog-Tags", "_dd.p.a=" + "b" * (READ_MAX - 9))
    + [("X-Datadog-Trace-Id", "1"), ("X-Datadog-Parent-Id", "2")],
    "x-datadog-tags 1 MiB": with_header("X-Datadog-Tags", "_dd.p.a=" + "b" * MIB)
    + [("X-Datadog-Trace-Id", "1"), ("X-Datadog-Parent-Id", "2")],
    # The name list at and around its space, and the names table's 64.
    **{f"names {n} bytes": names_of_length(n) for n in (NAMES_MAX - 1, NAMES_MAX, NAMES_MAX + 1)},
    "64 names": BASE + [(f"X-H-{i}", "v") for i in range(64 - len(BASE))],
    "65 names": BASE + [(f"X-H-{i}", "v") for i in range(65 - len(BASE))],
    "2000 headers, 200-byte names": BASE + [("X-" + f"{i:04d}" * 49 + "nn", "v") for i in range(2000)],
    "3000 User-Agent values": BASE + [("User-Agent", "a")] * 3000,
    "10000 values of one header": BASE + [("X-Same", "v")] * 10_000,
    "URI 8 KiB": BASE + [(":uri", "/" + "p" * (READ_MAX - 1))],
    "URI 1 MiB": BASE + [(":uri", "/" + "p" * MIB)],
    "URI query 1 MiB": BASE + [(":uri", "/p?" + "q" * MIB)],
    "method 1 MiB": BASE + [(":method", "M" * MIB)],
}
HEADER_TAGS = json.dumps({"service": "edge", "pipePath": "/mnt/fifo",
                          "headerTags": ["user-agent:http.ua", "x-same:http.same", "accept"]})


@pytest.mark.parametrize("shape", SHAPES)
def test_an_instance_keeps_its_pages_whatever_the_request(shape: str) -> None:
    cost = guest_fuel.measure(plugin(), 1, requests=[SHAPES[shape]])
    print(f"\n{shape}: {cost.ops:,.0f} wasm operations per request, pages {cost.start_pages} -> {cost.end_pages}")
    assert cost.frames == 1
    assert (cost.start_pages, cost.end_pages) == (PAGES, PAGES)


def test_header_tags_of_hostile_values_keep_the_pages_too() -> None:
    cost = guest_fuel.measure(plugin(), 5, config=HEADER_TAGS, requests=list(SHAPES.values()))
    assert cost.frames == 5
    assert (cost.start_pages, cost.end_pages) == (PAGES, PAGES)
