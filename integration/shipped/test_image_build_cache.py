"""How deploy/Dockerfile builds: the context .dockerignore lets through is the crates, the Makefile
and what plugins-local/ takes (no target/, .venv/, .git/, build/, docs or tests), and a change to the
project's code reuses the layer in which the dependencies were compiled: only the manifests and
Cargo.lock are in it.

The context is read back with BuildKit's local exporter; a copy of it with one source file changed
is built up to the dependencies' stage, whose steps must all come from the cache.
"""

from __future__ import annotations

import re
import shutil

from containers import docker, images
from harness import REPO_DIR

CONTEXT = [".traefik.yml", "Cargo.lock", "Cargo.toml", "LICENSE", "Makefile", "build.rs", "core", "postlink",
           "probe", "relay", "src"]


def export_context(dest) -> None:
    docker("build", "--network", "none", "-f", "-", "--output", f"type=local,dest={dest}", str(REPO_DIR),
           input="FROM scratch\nCOPY . /\n")


def test_the_context_is_the_sources_only(tmp_path) -> None:
    ctx = tmp_path / "ctx"
    export_context(ctx)
    assert sorted(p.name for p in ctx.iterdir()) == CONTEXT
    assert sorted(p.name for p in (ctx / "relay").iterdir()) == ["Cargo.toml", "build.rs", "src"]
    assert not [p for p in ctx.rglob("*.md")]
    assert not [p for p in ctx.rglob("target")]
    size = sum(p.stat().st_size for p in ctx.rglob("*") if p.is_file())
    print(f"build context: {size} bytes")
    assert size < 4 << 20


def test_a_source_change_reuses_the_dependencies_layer(tmp_path) -> None:
    images()  # the dependencies' layer is in the cache
    ctx = tmp_path / "ctx"
    export_context(ctx)
    shutil.copy(REPO_DIR / ".dockerignore", ctx)
    main = ctx / "relay" / "src" / "main.rs"
    main.write_text(main.read_text() + "\n// a change to the relay's code\n")
    r = docker("build", "--network", "none", "--progress", "plain", "-f", str(REPO_DIR / "deploy" / "Dockerfile"),
               "--target", "deps", str(ctx))
    steps = re.findall(r"^#\d+ \[deps \d+/\d+\] (\S+)", r.stderr, re.M)
    cached = re.findall(r"^#(\d+) CACHED$", r.stderr, re.M)
    print(f"deps stage steps: {steps}; cached vertices: {len(cached)}")
    assert steps and steps[-1] == "RUN"
    deps_vertices = re.findall(r"^#(\d+) \[deps \d+/\d+\]", r.stderr, re.M)
    assert set(deps_vertices) <= set(cached), r.stderr[-3000:]
    assert "Compiling" not in r.stderr
