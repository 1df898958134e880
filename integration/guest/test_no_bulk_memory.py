"""Every module we ship is free of the instructions that Traefik's wazero v1.8.0 hands to Go's
runtime.memmove (memory.copy/fill/init, and table copy/fill/init): with Go >= 1.24 those crash
Traefik for copies of 2 KiB or more, but only where Go's memmove takes its REP MOVS path (Intel
Ice Lake on; test_memmove_crash.py forces it on any CPU). This guard reads the modules themselves
with `tdp-postlink check`, and so holds whatever runs them: plugin.wasm and plugin-net.wasm
as `make build` lays them out, and the plugin.wasm inside the zip `make dist` makes. Their entry
points must also be the stack-resetting wrappers `tdp-postlink lower` adds.
"""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import pytest

import postlink
from harness import DEFAULT_PLUGIN_DIR, REPO_DIR


def plugin_dir() -> Path:
    return Path(os.environ.get("PLUGIN_DIR") or DEFAULT_PLUGIN_DIR)


def test_the_built_modules_have_no_bulk_memory_operations() -> None:
    shipped = [
        plugin_dir() / "plugin.wasm",
        plugin_dir() / "plugin-net.wasm",
        plugin_dir().parent / "traefik-datadog-plugin-net" / "plugin.wasm",
    ]
    missing = [str(p) for p in shipped if not p.is_file()]
    if missing:
        pytest.fail(f"not built (make build): {missing}")
    postlink.assert_clean(shipped)


def test_the_dist_zip_module_has_no_bulk_memory_operations(tmp_path) -> None:
    out = tmp_path / "dist"
    r = subprocess.run(["make", "--no-print-directory", "-s", "dist", f"DIST={out}"], cwd=REPO_DIR,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    (archive,) = out.glob("*.zip")
    wasm = tmp_path / "plugin.wasm"
    with zipfile.ZipFile(archive) as z:
        wasm.write_bytes(z.read("plugin.wasm"))
    postlink.assert_clean([wasm])


def test_the_guard_sees_bulk_memory_in_the_unlowered_module() -> None:
    # The linker's output, before the post-link step, does have them (Rust >= 1.87): so the
    # counts above are zero because of the step, not because the check misses them.
    linked = REPO_DIR / "target" / "wasm32-wasip1" / "release" / "traefik-datadog-plugin.wasm"
    if not linked.is_file():
        pytest.fail(f"{linked} not built (make build)")
    rc, reports = postlink.check(linked)
    words = reports[linked]
    print(f"{linked}: " + " ".join(f"{op}={words[op]}" for op in postlink.BULK_OPS))
    assert rc == 1 and int(words["memory.copy"]) > 0
    assert words["handle_request"] == "unwrapped"
