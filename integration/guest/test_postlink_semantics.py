"""The post-link step (`tdp-postlink lower`, postlink/) replaces `memory.copy` and `memory.fill`
with plain wasm functions, because Traefik's wazero v1.8.0 hands those instructions to Go's
runtime.memmove and Go >= 1.24 then crashes Traefik for copies of 2 KiB or more on ERMS+FSRM CPUs.
The replacements must behave exactly as the instructions do: here a small module is run before
and after lowering under wasmtime, over a sweep of sizes, alignments, overlaps and out-of-bounds
shapes, and the memory bytes and trap/no-trap outcomes must be equal. Then the entry-point
wrappers (shadow-stack reset after a trap), and the real plugin module, lowered, serving the same
requests with the same records as before.
"""

from __future__ import annotations

import gc
import json
import os
import random
import struct
import sys
import tempfile
from pathlib import Path

import wasmtime

import postlink
from harness import REPO_DIR

sys.path.insert(0, str(REPO_DIR / "scripts"))
import guest_fuel  # noqa: E402

PAGE = 65536
PAGES = 3
LEN = PAGES * PAGE
SIZES = list(range(71)) + [2047, 2048, 2049, 4095, 4096, 4097, 65536]
ALIGNS = range(16)

BULK = f"""
(module
  (memory (export "memory") {PAGES})
  (func (export "copy") (param i32 i32 i32)
    local.get 0 local.get 1 local.get 2 memory.copy)
  (func (export "fill") (param i32 i32 i32)
    local.get 0 local.get 1 local.get 2 memory.fill)
  (func (export "grow") (param i32) (result i32)
    local.get 0 memory.grow))
"""


def i32(v: int) -> int:
    """wasmtime takes i32 arguments as signed Python ints."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


class Side:
    """One instance of a module, with fuel metering to report what a call costs."""

    def __init__(self, wasm: bytes):
        cfg = wasmtime.Config()
        cfg.consume_fuel = True
        self.engine = wasmtime.Engine(cfg)
        self.store = wasmtime.Store(self.engine)
        self.store.set_fuel(1 << 62)
        self.instance = wasmtime.Instance(self.store, wasmtime.Module(self.engine, wasm), [])
        exports = self.instance.exports(self.store)
        self.memory = exports["memory"]
        self.funcs = {name: exports[name] for name in ("copy", "fill", "grow")}
        self.last_fuel = 0

    def call(self, name: str, *args: int) -> bool:
        """Calls `name`; True when it trapped."""
        fuel = self.store.get_fuel()
        try:
            self.funcs[name](self.store, *map(i32, args))
            trapped = False
        except wasmtime.Trap:
            trapped = True
        self.last_fuel = fuel - self.store.get_fuel()
        return trapped

    def run(self, name: str, args: tuple[int, ...], windows: list[tuple[int, int]],
            pattern: bytes) -> tuple[bool, list[bytes]]:
        """Lays `pattern` over each window, calls, and returns the outcome and the windows."""
        for lo, hi in windows:
            self.memory.write(self.store, pattern[lo:hi], lo)
        trapped = self.call(name, *args)
        return trapped, [bytes(self.memory.read(self.store, lo, hi)) for lo, hi in windows]


def clip(lo: int, hi: int) -> tuple[int, int]:
    return max(0, lo), min(LEN, hi)


def copy_cases():
    """(args, windows) for memory.copy: disjoint, overlapping, identical, out of bounds."""
    # Disjoint: dst right after src, every size, every src and dst alignment.
    for n in SIZES:
        for sa in ALIGNS:
            for da in ALIGNS:
                src = 256 + sa
                dst = 256 + n + 64 + da
                yield (dst, src, n), [clip(src - 32, dst + n + 32)]
    # Overlapping both ways (and identical: shift 0): small shifts around the block sizes,
    # and shifts proportional to n.
    shifts = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 63, 64, 65]
    for n in SIZES:
        extra = {n // 2, max(n - 1, 0), n, n + 1}
        for shift in sorted(set(shifts) | extra):
            for sign in (1, -1) if shift else (1,):
                for sa in ALIGNS:
                    src = 66_000 + sa
                    dst = src + sign * shift
                    lo, hi = min(src, dst), max(src, dst) + n
                    yield (dst, src, n), [clip(lo - 64, hi + 64)]
    # Bounds: at and one past the end, n = 0 at the end, and i32 wrap-around.
    edge = [clip(0, 512), clip(LEN - 512, LEN)]
    for n in (0, 1, 7, 8, 33, 257):
        yield (LEN - n, 100, n), edge
        yield (LEN - n + 1, 100, n), edge
        yield (100, LEN - n, n), edge
        yield (100, LEN - n + 1, n), edge
        yield (LEN - n, LEN - n, n), edge
    for args in [(LEN, LEN, 0), (LEN + 1, 0, 0), (0, LEN + 1, 0), (0, 0, 0xFFFFFFFF),
                 (0, 16, 0xFFFFFFFF), (0xFFFFFFFF, 0, 1), (0, 0xFFFFFFFF, 1),
                 (0xFFFFFFF0, 0, 0x20), (0, 0xFFFFFFF0, 0x20), (16, 0, 0xFFFFFFF0),
                 (100, LEN - 50, 100), (LEN - 50, 100, 100), (0x8000_0000, 0, 16),
                 (0xFFFFFFFF, 0xFFFFFFFF, 0)]:
        yield args, edge


def fill_cases():
    values = [0, 0xAB, 0x1FF, 0xFFFFFFFF, 0x12345678, 0x80, 0x7F00]
    for n in SIZES:
        for da in ALIGNS:
            for v in values if n <= 70 or da in (0, 1, 15) else values[:2]:
                dst = 256 + da
                yield (dst, v, n), [clip(dst - 32, dst + n + 32)]
    edge = [clip(0, 512), clip(LEN - 512, LEN)]
    for n in (0, 1, 7, 8, 33, 4097):
        yield (LEN - n, 0xCD, n), edge
        yield (LEN - n + 1, 0xCD, n), edge
    for args in [(LEN, 1, 0), (LEN + 1, 1, 0), (0, 1, 0xFFFFFFFF), (0xFFFFFFFF, 1, 1),
                 (0xFFFFFFF0, 1, 0x20), (16, 1, 0xFFFFFFF0), (0xFFFFFFFF, 1, 0)]:
        yield args, edge


def lowered_bulk(tmp_path: Path) -> tuple[bytes, bytes]:
    src, dst = tmp_path / "bulk.wasm", tmp_path / "bulk.lowered.wasm"
    src.write_bytes(wasmtime.wat2wasm(BULK))
    print(postlink.lower(src, dst))
    rc, reports = postlink.check(dst)
    assert rc == 0 and reports[dst]["memory.copy"] == reports[dst]["memory.fill"] == "0"
    return src.read_bytes(), dst.read_bytes()


def out_of_bounds(name: str, args: tuple[int, int, int]) -> bool:
    """The spec's trap condition, in unbounded integers: an end past the memory's size."""
    dst, src, n = args
    return dst + n > LEN or (name == "copy" and src + n > LEN)


def compare(name: str, cases, original: Side, lowered: Side) -> tuple[int, int]:
    pattern = random.Random(7).randbytes(LEN)
    mismatches, count, traps = [], 0, 0
    for args, windows in cases:
        want = original.run(name, args, windows, pattern)
        got = lowered.run(name, args, windows, pattern)
        count += 1
        traps += want[0]
        assert want[0] == out_of_bounds(name, args), (name, args)
        if want != got:
            mismatches.append((args, want[0], got[0]))
    assert not mismatches, f"{len(mismatches)} of {count} {name} cases differ, first: {mismatches[:5]}"
    return count, traps


def test_copy_and_fill_behave_exactly_as_the_instructions(tmp_path) -> None:
    original_wasm, lowered_wasm = lowered_bulk(tmp_path)
    original, lowered = Side(original_wasm), Side(lowered_wasm)
    n, traps = compare("copy", copy_cases(), original, lowered)
    print(f"memory.copy: {n} cases equal ({traps} trapping)")
    n, traps = compare("fill", fill_cases(), original, lowered)
    print(f"memory.fill: {n} cases equal ({traps} trapping)")


def test_bounds_follow_memory_grow(tmp_path) -> None:
    original_wasm, lowered_wasm = lowered_bulk(tmp_path)
    sides = [Side(original_wasm), Side(lowered_wasm)]
    for side in sides:
        assert side.call("copy", LEN, 0, 16)  # past the end: traps
        assert side.funcs["grow"](side.store, 1) == PAGES
        assert not side.call("copy", LEN, 0, 16)  # inside the new page
        assert not side.call("fill", LEN + PAGE - 8, 0x5A, 8)
        assert side.call("fill", LEN + PAGE - 8, 0x5A, 9)
    a, b = (bytes(s.memory.read(s.store, LEN, LEN + PAGE)) for s in sides)
    assert a == b and a[-8:] == b"\x5a" * 8


def test_large_copies_take_blocks_not_bytes(tmp_path) -> None:
    _, lowered_wasm = lowered_bulk(tmp_path)
    side = Side(lowered_wasm)
    costs = {}
    for n in (0, 1, 8, 31, 32, 100, 2048, 4096, 65536):
        cost = []
        for name, args in (("copy", (70_000 + 3, 256, n)),  # upwards, disjoint
                           ("copy", (300, 256, n)),  # downwards, overlapping
                           ("fill", (256 + 5, 0xAB, n))):
            assert not side.call(name, *args)
            cost.append(side.last_fuel)
        costs[n] = tuple(cost)
    print("wasm operations per call (copy up, copy down overlapping, fill): "
          + ", ".join(f"n={n}: {c}" for n, c in costs.items()))
    for n, (up, down, fill) in costs.items():
        # Up to 32 bytes no loop at all; then 32 bytes a turn, about one operation per byte,
        # where a byte-at-a-time loop costs ~10.
        assert max(up, down, fill) <= (70 if n <= 32 else 100 + 1.1 * n), (n, up, down, fill)


STACK = """
(module
  (memory (export "memory") 1)
  (global $sp (mut i32) (i32.const 4096))
  (export "sp" (global $sp))
  ;; A frame of 256 bytes; traps in the middle when asked: the epilogue then never runs.
  (func (export "handle_request") (param $trap i32) (result i32) (local $entry i32)
    global.get $sp local.set $entry
    global.get $sp i32.const 256 i32.sub global.set $sp
    local.get $trap if unreachable end
    global.get $sp i32.const 256 i32.add global.set $sp
    local.get $entry)
  (func (export "handle_response") (param i32 i32)
    i32.const 0 local.get 0 i32.store
    i32.const 4 local.get 1 i32.store))
"""


def test_entry_points_restore_the_stack_pointer_after_a_trap(tmp_path) -> None:
    src, dst = tmp_path / "stack.wasm", tmp_path / "stack.lowered.wasm"
    src.write_bytes(wasmtime.wat2wasm(STACK))
    assert "wrapped: handle_request, handle_response" in postlink.lower(src, dst)
    seen = {}
    for label, path in (("original", src), ("lowered", dst)):
        store = wasmtime.Store()
        inst = wasmtime.Instance(store, wasmtime.Module.from_file(store.engine, str(path)), [])
        ex = inst.exports(store)
        entries = [ex["handle_request"](store, 0)]
        try:
            ex["handle_request"](store, 1)
        except wasmtime.Trap:
            entries.append("trap")
        entries.append(ex["sp"].value(store))
        entries.append(ex["handle_request"](store, 0))
        ex["handle_response"](store, 7, -2)
        entries.append(struct.unpack("<ii", ex["memory"].read(store, 0, 8)))
        seen[label] = entries
    # Before: the trapped frame's 256 bytes stay taken for good. After: each entry starts at
    # the initial pointer again; parameters and results pass through.
    assert seen["original"] == [4096, "trap", 3840, 3840, (7, -2)]
    assert seen["lowered"] == [4096, "trap", 3840, 4096, (7, -2)]


# The real module: the same requests through the plugin before and after lowering, with the
# WASI clock and random source made deterministic so that records compare byte for byte.
BIG = "x" * 8192
REQUESTS = [
    guest_fuel.REQUEST_HEADERS,
    [(k, v) for k, v in guest_fuel.REQUEST_HEADERS if k != "User-Agent"] + [("User-Agent", BIG[:2048])],
    [(k, v) for k, v in guest_fuel.REQUEST_HEADERS if k != "Accept"] + [("Accept", BIG[:4096])],
    guest_fuel.REQUEST_HEADERS + [("Traceparent", "00-" + "a" * 2045), ("X-Datadog-Tags", "_dd.p.x=" + BIG)],
    guest_fuel.REQUEST_HEADERS + [("X-Datadog-Trace-Id", "1234567890123"), ("X-Datadog-Parent-Id", "42")],
]


def drive(wasm: Path, rounds: int = 3) -> dict:
    """Serves REQUESTS `rounds` times through one instance; returns what the guest did."""
    out: dict = {"ops": [], "results": [], "frames": b""}
    with tempfile.TemporaryDirectory() as tmp:
        spool = os.path.join(tmp, "fifo")
        open(spool, "wb").close()
        config = json.dumps({"service": "edge", "pipePath": "/mnt/fifo"})
        cfg = wasmtime.Config()
        cfg.consume_fuel = True
        engine = wasmtime.Engine(cfg)
        module = wasmtime.Module.from_file(engine, str(wasm))
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        linker.allow_shadowing = True
        host = guest_fuel.Host(config.encode())
        host.define(linker)
        i32t, i64t = wasmtime.ValType.i32(), wasmtime.ValType.i64()
        state = {"rand": random.Random(1), "clock": 1_700_000_000_000_000_000}

        def random_get(ptr, n):
            host.mem().write(host.store, state["rand"].randbytes(n), ptr)
            return 0

        def clock_time_get(clock, precision, ptr):
            state["clock"] += 1_000
            host.mem().write(host.store, struct.pack("<Q", state["clock"]), ptr)
            return 0

        linker.define_func("wasi_snapshot_preview1", "random_get",
                           wasmtime.FuncType([i32t, i32t], [i32t]), random_get)
        linker.define_func("wasi_snapshot_preview1", "clock_time_get",
                           wasmtime.FuncType([i32t, i64t, i32t], [i32t]), clock_time_get)
        wasi = wasmtime.WasiConfig()
        wasi.preopen_dir(tmp, "/mnt")
        store = wasmtime.Store(engine)
        store.set_wasi(wasi)
        store.set_fuel(1 << 62)
        instance = linker.instantiate(store, module)
        exports = instance.exports(store)
        host.store, host.memory = store, exports["memory"]
        exports["_start"](store)
        handle_request, handle_response = exports["handle_request"], exports["handle_response"]
        for _ in range(rounds):
            for request in REQUESTS:
                host.reset(request)
                fuel = store.get_fuel()
                ctx_next = handle_request(store)
                upstream = sorted(host.headers[0].items())
                handle_response(store, (ctx_next >> 32) & 0xFFFFFFFF, 0)
                out["ops"].append(fuel - store.get_fuel())
                out["results"].append((ctx_next, upstream))
        out["calls"] = dict(host.calls)
        out["pages"] = host.mem().size(store)
        with open(spool, "rb") as f:
            out["frames"] = f.read()
        host.store = host.memory = None
        del handle_request, handle_response, exports, instance, linker
        store = None
        gc.collect()
    return out


def test_the_real_plugin_lowered_serves_the_same_records(tmp_path) -> None:
    original = REPO_DIR / "target" / "wasm32-wasip1" / "release" / "traefik-datadog-plugin.wasm"
    assert original.is_file(), f"{original} not built (make build)"
    lowered = tmp_path / "plugin.wasm"
    print(postlink.lower(original, lowered))
    before, after = drive(original), drive(lowered)
    assert after["frames"] and after["frames"].count(b"TD\x01") == 3 * len(REQUESTS)
    assert after["frames"] == before["frames"]
    assert after["results"] == before["results"]
    assert (after["calls"], after["pages"]) == (before["calls"], before["pages"])
    n = len(REQUESTS)
    print("wasm operations per request, by request shape (unlowered -> lowered): " + ", ".join(
        f"{a:,} -> {b:,}" for a, b in zip(before["ops"][-n:], after["ops"][-n:])))

    # And what scripts/guest_fuel.py (`make guest-cost`) measures: the same but the count.
    fuel_before = guest_fuel.measure(str(original), 200)
    fuel_after = guest_fuel.measure(str(lowered), 200)
    print(f"guest_fuel.py: {fuel_before.ops:,.0f} -> {fuel_after.ops:,.0f} wasm operations per request "
          f"(request {fuel_before.request_ops:,.0f} -> {fuel_after.request_ops:,.0f}, "
          f"response {fuel_before.response_ops:,.0f} -> {fuel_after.response_ops:,.0f})")
    assert (fuel_after.calls, fuel_after.frames, fuel_after.start_pages, fuel_after.end_pages) == (
        fuel_before.calls, fuel_before.frames, fuel_before.start_pages, fuel_before.end_pages)
