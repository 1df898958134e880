"""The guest's own work per request, counted exactly: wasm operations (fuel).

Traefik's callgrind figures (scripts/host_cost.py) mix the guest's compiled
wasm with wazero's trampolines and Go's host functions, take minutes per
variant and move with the machine's load. This runs the real plugin.wasm
under wasmtime with fuel metering and a stand-in for the http-wasm host
(request and response as `scripts/host_cost.py` sends them, plus the
`X-Forwarded-*` headers Traefik adds), and counts the wasm operations the
guest executes in `handle_request` + `handle_response`: host functions are
Python here and cost no fuel. The count repeats exactly for the same module
and request, whatever the machine is doing, so a change's effect on the
guest is seen in seconds.

It also counts the host calls the guest makes per request, by name.

Usage: .venv/bin/python scripts/guest_fuel.py [plugin.wasm] [-n 200] [--config JSON]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import gc
import json
import os
import sys
import tempfile

import wasmtime

REQUEST_HEADERS = [
    ("Host", "a.test"),
    ("User-Agent", "bench/1"),
    ("Accept", "*/*"),
    ("Accept-Encoding", "identity"),
    ("X-Forwarded-For", "127.0.0.1"),
    ("X-Forwarded-Host", "a.test"),
    ("X-Forwarded-Port", "80"),
    ("X-Forwarded-Proto", "http"),
    ("X-Forwarded-Server", "bench"),
    ("X-Real-Ip", "127.0.0.1"),
]
RESPONSE_HEADERS = [("Content-Length", "2"), ("Content-Type", "text/plain; charset=utf-8")]


class Host:
    """Just enough of http-wasm-host-go's behaviour: Go's canonical header
    keys, values NUL-terminated, `count << 32 | length` results."""

    def __init__(self, config: bytes):
        self.config = config
        self.calls: collections.Counter[str] = collections.Counter()
        self.memory: wasmtime.Memory | None = None
        self.store: wasmtime.Store | None = None
        self.reset(REQUEST_HEADERS)

    def reset(self, request: list[tuple[str, str | bytes]]) -> None:
        """A request's headers, in order; a repeated name has several values. The pseudo-headers
        `:method` and `:uri` replace the request line's (default `GET /bench`)."""
        self.method, self.uri = b"GET", b"/bench"
        headers: dict[str, list[bytes]] = {}
        for k, v in request:
            raw = v.encode() if isinstance(v, str) else v
            if k == ":method":
                self.method = raw
            elif k == ":uri":
                self.uri = raw
            else:
                headers.setdefault(self.canonical(k.encode()), []).append(raw)
        self.headers = {0: headers, 1: {k: [v.encode()] for k, v in RESPONSE_HEADERS}}

    def mem(self) -> wasmtime.Memory:
        assert self.memory is not None
        return self.memory

    def read(self, ptr: int, n: int) -> bytes:
        return bytes(self.mem().read(self.store, ptr, ptr + n))

    def write(self, ptr: int, limit: int, data: bytes) -> int:
        if len(data) <= limit:
            self.mem().write(self.store, data, ptr)
        return len(data)

    @staticmethod
    def canonical(name: bytes) -> str:
        return "-".join(p[:1].upper() + p[1:].lower() for p in name.decode("latin-1").split("-"))

    def define(self, linker: wasmtime.Linker) -> None:
        i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()

        def fn(name, params, results, f):
            def counted(*args):
                self.calls[name] += 1
                return f(*args)

            linker.define_func("http_handler", name, wasmtime.FuncType(params, results), counted)

        fn("log", [i32, i32, i32], [], lambda lvl, p, n: None)
        fn("log_enabled", [i32], [i32], lambda lvl: 0)
        fn("get_config", [i32, i32], [i32], lambda p, lim: self.write(p, lim, self.config))
        fn("enable_features", [i32], [i32], lambda f: f)
        fn("get_method", [i32, i32], [i32], lambda p, lim: self.write(p, lim, self.method))
        fn("get_uri", [i32, i32], [i32], lambda p, lim: self.write(p, lim, self.uri))
        fn("get_protocol_version", [i32, i32], [i32], lambda p, lim: self.write(p, lim, b"HTTP/1.1"))
        fn("get_source_addr", [i32, i32], [i32], lambda p, lim: self.write(p, lim, b"127.0.0.1:40000"))
        fn("get_status_code", [], [i32], lambda: 200)

        def names(kind, p, lim):
            hs = self.headers[kind]
            data = b"".join(k.encode() + b"\0" for k in sorted(hs))
            return (len(hs) << 32) | self.write(p, lim, data)

        def values(kind, np, nl, p, lim):
            key = self.canonical(self.read(np, nl))
            vs = self.headers[kind].get(key)
            if not vs:
                return 0
            return (len(vs) << 32) | self.write(p, lim, b"".join(v + b"\0" for v in vs))

        def set_value(kind, np, nl, vp, vl):
            self.headers[kind][self.canonical(self.read(np, nl))] = [self.read(vp, vl)]

        def remove(kind, np, nl):
            self.headers[kind].pop(self.canonical(self.read(np, nl)), None)

        fn("get_header_names", [i32, i32, i32], [i64], names)
        fn("get_header_values", [i32, i32, i32, i32, i32], [i64], values)
        fn("set_header_value", [i32, i32, i32, i32, i32], [], set_value)
        fn("add_header_value", [i32, i32, i32, i32, i32], [], set_value)
        fn("remove_header", [i32, i32, i32], [], remove)


@dataclasses.dataclass
class Cost:
    """What `n` requests cost the guest, per request."""

    request_ops: float
    response_ops: float
    calls: dict[str, float]
    start_pages: int
    end_pages: int
    frames: int

    @property
    def ops(self) -> float:
        return self.request_ops + self.response_ops


def measure(wasm: str, n: int, config: str | None = None,
            requests: list[list[tuple[str, str]]] | None = None) -> Cost:
    """Serves 20 warm-up requests, then `n` counted ones (cycling through `requests`, default:
    the bench's request) through one instance of `wasm` in pipe mode."""
    requests = requests or [REQUEST_HEADERS]
    with tempfile.TemporaryDirectory() as tmp:
        # A regular file where the FIFO would be: wasmtime's WASI does not open FIFOs, and a
        # frame appended to a file takes the same path through the guest as one written to a
        # FIFO (one open per instance, one write per record).
        open(os.path.join(tmp, "fifo"), "wb").close()
        reader = os.open(os.path.join(tmp, "fifo"), os.O_RDONLY)
        config = config or json.dumps({"service": "edge", "pipePath": "/mnt/fifo"})
        cfg = wasmtime.Config()
        cfg.consume_fuel = True
        if os.environ.get("GUEST_FUEL_PERFMAP"):
            cfg.profiler = "perfmap"
        engine = wasmtime.Engine(cfg)
        module = wasmtime.Module.from_file(engine, wasm)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        host = Host(config.encode())
        host.define(linker)
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
        sides = [0, 0]
        frames = [0]

        def one(i: int) -> None:
            host.reset(requests[i % len(requests)])
            fuel = store.get_fuel()
            ctx_next = handle_request(store)
            sides[0] += fuel - store.get_fuel()
            fuel = store.get_fuel()
            handle_response(store, (ctx_next >> 32) & 0xFFFFFFFF, 0)
            sides[1] += fuel - store.get_fuel()
            while chunk := os.read(reader, 65536):
                frames[0] += chunk.count(b"TD\x01")

        start_pages = host.mem().size(store)
        for i in range(20):
            one(i)
        host.calls.clear()
        sides[:] = [0, 0]
        frames[0] = 0
        for i in range(n):
            one(i)
        end_pages = host.mem().size(store)
        os.close(reader)
        # wasmtime's objects released now, in order, callbacks and instance before their
        # store: left to the interpreter's exit, they crash it (a segfault after the last test).
        host.store = host.memory = None
        del one, handle_request, handle_response, exports, instance, linker
        store = None
        gc.collect()
    return Cost(sides[0] / n, sides[1] / n, {k: v / n for k, v in sorted(host.calls.items())},
                start_pages, end_pages, frames[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wasm", nargs="?", default="target/wasm32-wasip1/release/traefik-datadog-plugin.wasm")
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--config", default=None, help="plugin config as JSON (default: pipe mode)")
    args = ap.parse_args()
    c = measure(args.wasm, args.n, args.config)
    print(f"memory: {c.start_pages} pages of 64 KiB after start, {c.end_pages} after the requests")
    print(f"wasm operations per request: {c.ops:,.0f} (request {c.request_ops:,.0f}, response {c.response_ops:,.0f})")
    print("host calls per request: " + ", ".join(f"{k} {v:g}" for k, v in c.calls.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
