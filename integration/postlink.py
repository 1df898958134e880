"""The post-link tool (postlink/, `tdp-postlink`) for the tests that run it: built once per
session with cargo (a no-op when `make build` already built it, and never a stale binary after
an edit), then `lower` and `check` as subprocesses."""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

from harness import REPO_DIR

TOOL = REPO_DIR / "target" / "release" / "tdp-postlink"
BULK_OPS = ("memory.copy", "memory.fill", "memory.init", "data.drop",
            "table.copy", "table.fill", "table.init", "elem.drop")


@functools.cache
def tool() -> Path:
    r = subprocess.run(["cargo", "build", "--release", "-q", "-p", "tdp-postlink"], cwd=REPO_DIR,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return TOOL


def lower(src: Path, dst: Path) -> str:
    """Lowers `src` into `dst`; returns the tool's one-line summary."""
    r = subprocess.run([str(tool()), "lower", str(src), str(dst)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def check(*paths: Path) -> tuple[int, dict[Path, dict[str, str]]]:
    """`tdp-postlink check`: its exit status and, per file, its `key=value` words."""
    r = subprocess.run([str(tool()), "check", *map(str, paths)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode in (0, 1), r.stderr
    reports = {}
    for path, line in zip(paths, r.stdout.splitlines(), strict=True):
        name, _, words = line.partition(": ")
        assert name == str(path), line
        reports[path] = dict(re.findall(r"(\S+)=(\S+)", words))
    return r.returncode, reports


def assert_clean(paths: list[Path]) -> None:
    """Each module has no bulk-memory or table operation and both entry points wrapped."""
    rc, reports = check(*paths)
    for path, words in reports.items():
        print(f"{path}: " + " ".join(f"{op}={words[op]}" for op in BULK_OPS))
    for path, words in reports.items():
        assert {op: words[op] for op in BULK_OPS} == dict.fromkeys(BULK_OPS, "0"), path
        assert (words["handle_request"], words["handle_response"]) == ("wrapped", "wrapped"), path
    assert rc == 0
