"""No first request crashes Traefik or traps the guest on the CPUs where Traefik's wasm compiler
miscompiles bulk memory operations: Intel Ice Lake and newer (ERMS + FSRM), and CPUs without AVX.

Traefik 3.7's wazero v1.8.0 lowers ``memory.copy``/``memory.fill`` to calls of Go's memmove and
keeps a value in a register that Go >= 1.24's memmove overwrites on those CPUs, for copies of
2 KiB and more. One request with a 2 KiB ``Accept`` header used to kill Traefik (SIGSEGV); a 7 KB
``User-Agent`` made the guest trap (500 with the wasm stack trace). The shipped modules contain
no bulk memory operation (``tdp-postlink lower``; ``test_no_bulk_memory.py``).

Every Traefik here runs with Go's memmove forced onto the Ice Lake path (``memmove_path.py``), so
this holds on the machine running the suite whatever its CPU. The first test proves the forcing
works: a guest that keeps values in registers across a 4 KiB ``memory.copy`` traps under it.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import requests
import wasmtime

import postlink
from conftest import TraefikFactory
from harness import NET_PLUGIN_DIR, REPO_DIR, find_plugin_dir
from memmove_path import cpu_can_crash

CANARY = REPO_DIR / "testdata" / "memmove" / "live_across_copy.wat"
LOG_MODE = {"service": "edge", "env": "test", "mode": "log"}
# The shapes that crashed or trapped a fresh Traefik, and their neighbours at the boundaries.
SHAPES = [
    ("Accept", 2048),
    ("Accept", 4096),
    ("Content-Type", 2048),
    ("Upgrade", 2048),
    ("traceparent", 2048),
    ("tracestate", 4096),
    ("x-datadog-tags", 4096),
    ("User-Agent", 7000),
    ("User-Agent", 8192),
    ("User-Agent", 65536),
    ("X-Custom-Header-", 110),  # 110 headers X-Custom-Header-0..109
]


def test_the_cpu_and_the_forced_path() -> None:
    possible, cpu = cpu_can_crash()
    print(f"\nmemmove crash possible on this CPU by itself: {'yes' if possible else 'no'} ({cpu}); "
          "every Traefik of this file runs on the Ice Lake memmove path regardless")


def canary_dir(tmp: Path, lowered: bool) -> Path:
    d = tmp / ("canary-lowered" if lowered else "canary")
    d.mkdir()
    raw = d / "raw.wasm"
    raw.write_bytes(wasmtime.wat2wasm(CANARY.read_text()))
    if lowered:
        postlink.lower(raw, d / "plugin.wasm")
        raw.unlink()
    else:
        raw.rename(d / "plugin.wasm")
    shutil.copy(REPO_DIR / ".traefik.yml", d / ".traefik.yml")
    return d


def answer(url: str, headers: dict[str, str] | None = None) -> tuple[int | None, bytes]:
    """Status and body, or (None, b"") if Traefik did not answer."""
    try:
        r = requests.get(url, headers={"Host": "api.example.com", **(headers or {})}, timeout=30)
        return r.status_code, r.content
    except requests.RequestException:
        return None, b""


def test_the_forced_path_breaks_a_guest_with_values_live_across_a_copy(
        traefik_factory: TraefikFactory, tmp_path: Path) -> None:
    """The check of the check: without it, a green run on a CPU that cannot crash proves nothing.
    The same guest passed through tdp-postlink answers 200: the lowering removes the cause."""
    results = {}
    for lowered in (False, True):
        t = traefik_factory(middlewares={"dd": {}}, plugin_dir=canary_dir(tmp_path, lowered),
                            ice_lake_memmove=True, ready_routes=["bare"])
        results[lowered] = [answer(f"{t.url('web')}/c{i}") for i in range(3)]
        t.stop()
    print(f"\ncanary: as compiled {[s for s, _ in results[False]]}, lowered {[s for s, _ in results[True]]}")
    assert [s for s, _ in results[False]] == [500] * 3
    # A lost value traps as it is used: as an address (out of bounds) or in the sum (unreachable).
    assert all(b.startswith(b"wasm error: ") for _, b in results[False]), results[False][0][1][:200]
    assert [s for s, _ in results[True]] == [200] * 3


def hostile(header: str, size: int) -> dict[str, str]:
    if header.endswith("-"):
        return {f"{header}{i}": "v" for i in range(size)}
    if header == "traceparent":
        return {header: "00-" + "a" * (size - 3)}
    return {header: "a" * size}


@pytest.mark.parametrize(("header", "size"), SHAPES, ids=[f"{h}{n}" for h, n in SHAPES])
def test_a_hostile_first_request_is_served_and_recorded(
        traefik_factory: TraefikFactory, header: str, size: int) -> None:
    """A fresh Traefik on the Ice Lake path: the hostile request is the plugin's first. It is
    answered as the bare router answers it, Traefik stays up, and it and the ten plain requests
    after it are recorded exactly once each."""
    t = traefik_factory(middlewares={"dd": dict(LOG_MODE)}, ice_lake_memmove=True, ready_routes=["bare"])
    bare = answer(f"{t.url('bare')}/first", hostile(header, size))
    web = answer(f"{t.url('web')}/first", hostile(header, size))
    plain = [answer(f"{t.url('web')}/plain-{i}")[0] for i in range(10)]
    alive = t.proc is not None and t.proc.poll() is None
    assert alive, f"Traefik exited with {t.proc.returncode if t.proc else None}:\n{t.output_tail(40)}"
    assert not web[1].startswith(b"wasm error"), web[1][:300]
    assert (web[0], plain) == (bare[0], [200] * 10)
    want = ["/first"] + [f"/plain-{i}" for i in range(10)]
    deadline = time.monotonic() + 30
    while sorted(r.data.get("RequestPath") for r in t.records()) != sorted(want) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(r.data.get("RequestPath") for r in t.records()) == sorted(want)


@pytest.mark.parametrize(("header", "size"), [("Accept", 4096), ("User-Agent", 8192)])
def test_the_socket_build_survives_a_hostile_first_request(
        traefik_factory: TraefikFactory, header: str, size: int) -> None:
    """plugin-net.wasm runs on Traefik's other WASI host (wasi-go) with the same compiler."""
    t = traefik_factory(middlewares={"dd": {**LOG_MODE, "mode": "network"}},
                        plugin_dir=find_plugin_dir(NET_PLUGIN_DIR), module_name="traefik-datadog-plugin-net",
                        ice_lake_memmove=True, ready_routes=["bare"])
    bare = answer(f"{t.url('bare')}/first", hostile(header, size))
    web = answer(f"{t.url('web')}/first", hostile(header, size))
    plain = [answer(f"{t.url('web')}/plain-{i}")[0] for i in range(10)]
    assert t.proc is not None and t.proc.poll() is None, t.output_tail(40)
    assert not web[1].startswith(b"wasm error"), web[1][:300]
    assert (web[0], plain) == (bare[0], [200] * 10)
