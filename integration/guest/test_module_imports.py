"""plugin.wasm imports no socket function (Traefik keeps it in plain wazero WASI, where every
instance has its own state, so it may read the files the relay publishes in its mount);
plugin-net.wasm adds exactly the least-risk four of the WasmEdge socket extension and nothing that
receives, polls, resolves, queries addresses or reads (its host shares that state unlocked)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import wasmtime

from harness import DEFAULT_PLUGIN_DIR

WASI = "wasi_snapshot_preview1"
LEAST_RISK = {"sock_open", "sock_connect", "sock_send", "fd_fdstat_set_flags"}
FORBIDDEN = {"sock_recv", "sock_recv_from", "sock_send_to", "sock_bind", "sock_listen", "sock_accept",
             "sock_getaddrinfo", "sock_getpeeraddr", "sock_getlocaladdr", "sock_setsockopt", "sock_getsockopt",
             "sock_shutdown", "poll_oneoff", "fd_read"}
# Safe in plain WASI (each instance its own state): the published rates and routes are read, and
# the mounted directory listed when the FIFO is missing (another relay's FIFO beside it?).
PLAIN_ALLOWED = {"fd_read", "path_filestat_get", "fd_readdir"}


def imports(path: Path) -> set[tuple[str, str]]:
    if not path.is_file():
        pytest.fail(f"{path} not built (make build)")
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(path))
    return {(i.module, i.name) for i in module.imports}


def plugin_dir() -> Path:
    return Path(os.environ.get("PLUGIN_DIR") or DEFAULT_PLUGIN_DIR)


def test_default_module_has_no_socket_imports() -> None:
    names = {n for m, n in imports(plugin_dir() / "plugin.wasm") if m == WASI}
    assert {n for n in names if n.startswith("sock_")} == set()
    assert names & (FORBIDDEN - PLAIN_ALLOWED) == set()


def test_net_module_adds_exactly_the_least_risk_imports() -> None:
    base = imports(plugin_dir() / "plugin.wasm")
    net = imports(plugin_dir() / "plugin-net.wasm")
    assert {n for m, n in net - base} == LEAST_RISK
    assert {n for m, n in base - net} <= PLAIN_ALLOWED
    assert all(m == WASI for m, _ in net - base)
    assert {n for m, n in net if m == WASI} & FORBIDDEN == set()
    # The plugins-local folder of the net build holds the same module.
    net_dir = plugin_dir().parent / "traefik-datadog-plugin-net"
    assert (net_dir / "plugin.wasm").read_bytes() == (plugin_dir() / "plugin-net.wasm").read_bytes()
