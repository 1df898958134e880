"""Local Datadog stand-ins and the relay, as real processes and sockets.

- TestAgent: the official Datadog APM test agent (PyPI ddapm-test-agent) as trace intake.
- StatsdListener: a real UDP socket that collects DogStatsD datagrams and checks every line.
- Relay: the traefik-datadog-relay binary.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
import requests

from harness import REPO_DIR, free_port

RELAY_BIN = Path(os.environ.get("RELAY_BIN") or REPO_DIR / "target" / "release" / "traefik-datadog-relay")
# Trace checks of the test agent that apply to a non-library tracer.
AGENT_CHECKS = "trace_count_header,trace_content_length"


def find_test_agent() -> str:
    for c in (shutil.which("ddapm-test-agent"), str(Path(sys.executable).parent / "ddapm-test-agent")):
        if c and os.path.isfile(c):
            return c
    pytest.fail("ddapm-test-agent not found (pip install -r integration/requirements.txt)")


class TestAgent:
    """ddapm-test-agent on free ports; `traces()` reads back what it accepted."""

    __test__ = False  # not a pytest class

    def __init__(self, workdir: Path, port: int | None = None):
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"test-agent-{self.port}.log"

    def start(self, timeout: float = 30.0) -> "TestAgent":
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [find_test_agent(), "--port", str(self.port), "--host", "127.0.0.1",
             "--otlp-http-port", str(free_port()), "--otlp-grpc-port", str(free_port()),
             "--log-level", "WARNING"],
            # 1.69.1 takes the checks from the environment only.
            env={**os.environ, "ENABLED_CHECKS": AGENT_CHECKS},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"test agent exited: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(f"{self.url}/info", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        pytest.fail(f"test agent not ready: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def traces(self) -> list[list[dict[str, Any]]]:
        r = requests.get(f"{self.url}/test/session/traces", timeout=30)
        r.raise_for_status()
        return r.json()

    def spans(self) -> list[dict[str, Any]]:
        return [s for t in self.traces() for s in t]

    def check_failures(self) -> str:
        r = requests.get(f"{self.url}/test/trace_check/failures", timeout=10)
        return "" if r.status_code == 200 else r.text


# name:value[:value...]|type[|@rate][|#tags]
STATSD_LINE = re.compile(r"^[A-Za-z][\w.]*:(-?[\d.e+-]+)(:-?[\d.e+-]+)*\|(c|g|ms|h|s|d)(\|@[\d.]+)?(\|#[^|\s]*)?(\|T\d+)?$")


@dataclass
class Metric:
    name: str
    values: list[float]
    kind: str
    tags: dict[str, str]


class StatsdListener:
    """A UDP DogStatsD listener that keeps every line and every malformed one."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"udp://127.0.0.1:{self.port}"
        self.datagrams: list[bytes] = []
        self.malformed: list[str] = []
        self.metrics: list[Metric] = []
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                data = self.sock.recv(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.datagrams.append(data)
                for line in data.decode("utf-8", errors="replace").split("\n"):
                    if not line:
                        continue
                    if not STATSD_LINE.match(line):
                        self.malformed.append(line)
                        continue
                    head, kind, *rest = line.split("|")
                    name, *vals = head.split(":")
                    tags: dict[str, str] = {}
                    for part in rest:
                        if part.startswith("#"):
                            for t in part[1:].split(","):
                                k, _, v = t.partition(":")
                                tags[k] = v
                    self.metrics.append(Metric(name, [float(v) for v in vals], kind, tags))

    def total(self, name: str, **tags: str) -> float:
        """Sum of a count metric's values over the lines whose tags include ``tags``."""
        with self._lock:
            return sum(sum(m.values) for m in self.metrics
                       if m.name == name and all(m.tags.get(k) == v for k, v in tags.items()))

    def samples(self, name: str) -> int:
        with self._lock:
            return sum(len(m.values) for m in self.metrics if m.name == name)

    def by_tag(self, name: str, tag: str) -> Counter[str]:
        with self._lock:
            c: Counter[str] = Counter()
            for m in self.metrics:
                if m.name == name:
                    c[m.tags.get(tag, "")] += sum(m.values)
            return c

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        self._thread.join(2)


class Relay:
    """traefik-datadog-relay as a subprocess; stderr (its own log) kept in a file."""

    def __init__(self, workdir: Path, args: list[str], *, stdin: IO[bytes] | int | None = None,
                 stdout_path: Path | None = None, name: str = "relay"):
        if not RELAY_BIN.is_file():
            pytest.fail(f"relay not built: {RELAY_BIN} (cargo build --release)")
        self.workdir = workdir
        self.args = args
        self.stdin = stdin
        self.stdout_path = stdout_path
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> "Relay":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        err = open(self.log_path, "ab")
        out = open(self.stdout_path, "ab") if self.stdout_path else subprocess.DEVNULL
        self.proc = subprocess.Popen([str(RELAY_BIN), *self.args], stdin=self.stdin or subprocess.DEVNULL,
                                     stdout=out, stderr=err, start_new_session=True)
        err.close()
        if self.stdout_path:
            out.close()  # type: ignore[union-attr]
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            pytest.fail(f"relay did not stop within {timeout}s after signal {sig}")

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
