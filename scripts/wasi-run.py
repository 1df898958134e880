"""Cargo test runner for wasm32-wasip1: runs a test binary under wasmtime.

Cargo calls `<runner> <test.wasm> [libtest args...]`. The module gets the
arguments, the current directory preopened and stdout/stderr inherited, and
its exit code becomes ours, so `cargo test` reads libtest's output as usual.
"""

import os
import sys

import wasmtime


def main() -> int:
    wasm, args = sys.argv[1], sys.argv[1:]
    engine = wasmtime.Engine()
    module = wasmtime.Module.from_file(engine, wasm)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    wasi = wasmtime.WasiConfig()
    wasi.argv = [os.path.basename(args[0])] + args[1:]
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    wasi.inherit_env()
    wasi.preopen_dir(".", ".")
    store = wasmtime.Store(engine)
    store.set_wasi(wasi)
    instance = linker.instantiate(store, module)
    start = instance.exports(store)["_start"]
    try:
        start(store)
    except wasmtime.ExitTrap as e:
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
