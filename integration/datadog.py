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

from harness import REPO_DIR, free_port, free_ports, stop_process

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

    def __init__(self, workdir: Path, port: int | None = None, host: str = "127.0.0.1",
                 uds: Path | None = None):
        """``uds``: also take traces on this Unix socket (`--trace-uds-socket`), as the agent's
        `/var/run/datadog/apm.socket`; the TCP port stays for reading back."""
        self.workdir = workdir
        self.uds = uds
        self.port = port or free_port()
        self.host = host
        self.url = f"http://{host}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"test-agent-{self.port}.log"

    def start(self, timeout: float = 30.0) -> "TestAgent":
        self.workdir.mkdir(parents=True, exist_ok=True)
        otlp_http, otlp_grpc = free_ports(2, avoid={self.port})
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [find_test_agent(), "--port", str(self.port), "--host", self.host,
             "--otlp-http-port", str(otlp_http), "--otlp-grpc-port", str(otlp_grpc),
             "--log-level", "WARNING",
             *(["--trace-uds-socket", str(self.uds)] if self.uds else [])],
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
        stop_process(self.proc)

    def traces(self) -> list[list[dict[str, Any]]]:
        r = requests.get(f"{self.url}/test/session/traces", timeout=30)
        r.raise_for_status()
        return r.json()

    def spans(self) -> list[dict[str, Any]]:
        return [s for t in self.traces() for s in t]

    def requests(self) -> list[dict[str, Any]]:
        """The trace requests the agent received this session: `headers`, `url`, `method`, `body`."""
        r = requests.get(f"{self.url}/test/session/requests", timeout=30)
        r.raise_for_status()
        return r.json()

    def check_failures(self) -> str:
        r = requests.get(f"{self.url}/test/trace_check/failures", timeout=10)
        return "" if r.status_code == 200 else r.text


# name:value[:value...]|type[|@rate][|#tags][|T<ts>][|c:<container>][|e:<external env>]
STATSD_LINE = re.compile(r"^[A-Za-z][\w.]*:(-?[\d.e+-]+)(:-?[\d.e+-]+)*\|(c|g|ms|h|s|d)(\|@[\d.]+)?(\|#[^|\s]*)?(\|T\d+)?"
                         r"(\|c:[^|\s]+)?(\|e:[^|\s]+)?$")


@dataclass
class Metric:
    name: str
    values: list[float]
    kind: str
    tags: dict[str, str]
    # The origin fields: `|c:` (container ID or in-<inode>), `|e:` (external env).
    container: str = ""
    external_env: str = ""


class StatsdListener:
    """A UDP DogStatsD listener that keeps every line and every malformed one. With ``unix``, a Unix
    datagram socket at that path instead (the agent's `/var/run/datadog/dsd.socket`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, unix: Path | None = None) -> None:
        if unix is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            self.sock.bind(str(unix))
            self.port = 0
            self.url = f"unix://{unix}"
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            self.sock.bind((host, port))
            self.port = self.sock.getsockname()[1]
            self.url = f"udp://{host}:{self.port}"
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
                    container = external_env = ""
                    for part in rest:
                        if part.startswith("#"):
                            for t in part[1:].split(","):
                                k, _, v = t.partition(":")
                                tags[k] = v
                        elif part.startswith("c:"):
                            container = part[2:]
                        elif part.startswith("e:"):
                            external_env = part[2:]
                    self.metrics.append(Metric(name, [float(v) for v in vals], kind, tags, container, external_env))

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


# A line of the relay's own log, text or JSON (relay/src/log.rs).
RELAY_LINE = re.compile(r'^\S+ traefik-datadog-relay (info|warn|error): |^\{"time":.*"logger":"traefik-datadog-relay"')


class Relay:
    """traefik-datadog-relay as a subprocess; its own log (info on stdout, warn/error on stderr) kept
    in a file. With ``stdout_path`` (--stdin: Traefik's copied lines), stdout goes there and `log()`
    picks the relay's lines out of it. ``env``: the environment (default: this process's)."""

    def __init__(self, workdir: Path, args: list[str], *, stdin: IO[bytes] | int | None = None,
                 stdout_path: Path | None = None, name: str = "relay", env: dict[str, str] | None = None):
        if not RELAY_BIN.is_file():
            pytest.fail(f"relay not built: {RELAY_BIN} (cargo build --release)")
        self.workdir = workdir
        self.args = args
        self.stdin = stdin
        self.stdout_path = stdout_path
        self.name = name
        self.env = env
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> "Relay":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        err = open(self.log_path, "ab")
        out = open(self.stdout_path if self.stdout_path else self.log_path, "ab")
        self.proc = subprocess.Popen([str(RELAY_BIN), *self.args], stdin=self.stdin or subprocess.DEVNULL,
                                     stdout=out, stderr=err, start_new_session=True, env=self.env)
        err.close()
        out.close()
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

    def copied(self) -> bytes:
        """What the relay wrote to ``stdout_path`` other than its own log lines: with --stdin, the
        lines of Traefik it copied through. Each line is written whole (relay/src/input/stdin.rs)."""
        assert self.stdout_path is not None
        return b"".join(line for line in self.stdout_path.read_bytes().splitlines(keepends=True)
                        if not RELAY_LINE.match(line.decode("utf-8", errors="replace")))

    def log(self) -> str:
        own = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        if self.stdout_path and self.stdout_path.exists():
            copied = self.stdout_path.read_text(errors="replace").splitlines(keepends=True)
            own += "".join(line for line in copied if RELAY_LINE.match(line))
        return own

    def counters(self, nth_from_end: int = 1) -> dict[str, int]:
        """The totals of a `counters ...` line of the relay's log (default: the last one, which is
        the final report after SIGTERM). Keys as printed: `pipe.received`, `spans_sent`,
        `buffer_full`, `rss_bytes`... An empty dict if there is none."""
        found = [line for line in self.log().splitlines() if " info: counters " in line]
        if len(found) < nth_from_end:
            return {}
        return {k: int(v) for k, v in re.findall(r"([\w.]+)=(\d+)", found[-nth_from_end])}

    def wait_log(self, text: str, timeout: float = 10.0) -> None:
        """Waits until the relay's log holds `text`; fails if it does not within `timeout`."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"relay exited with {self.proc.returncode} before logging {text!r}:\n{self.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"relay did not log {text!r} within {timeout}s:\n{self.log()[-3000:]}")
            time.sleep(0.05)


# --- Plugin records exactly as the guest writes them (for tests that feed the relay directly) ---
#
# The fallback line is `fallback::encode` (core/src/wire/fallback.rs): compact JSON, fields in this order.
# A binary frame is `binary::encode` (core/src/wire/binary/mod.rs): `TD`, version 1, flags 0, body length (u16 LE),
# then the record as a MessagePack array in the field order of `Record` (core/src/record/mod.rs).
# Checked byte for byte against relay/examples/gen-records.


@dataclass
class PluginRecord:
    span_id: int
    trace_id: int
    path: str
    host: str = "a.test"
    method: str = "GET"
    status: int = 200
    start_ns: int = 0
    duration_ns: int = 1_250_000
    client_addr: str = "10.1.2.3:55555"
    user_agent: str = "relay-test/1"
    trace_id_high: int = 0
    service: str = "edge"
    env: str = "test"
    version: str = "1.2.3"
    scheme: str = "http"
    sampling_priority: int = 1

    @property
    def error_type(self) -> str:
        return "client_error" if 400 <= self.status < 500 else "server_error" if self.status >= 500 else ""

    def text(self) -> str:
        """The guest's fallback line (no newline)."""
        import datetime as dt
        import json
        secs, ns = divmod(self.start_ns, 1_000_000_000)
        utc = dt.datetime.fromtimestamp(secs, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        fields = {
            "marker": "traefik-datadog", "schema": 1, "StartUTC": f"{utc}.{ns // 1000:06d}Z",
            "start_ns": self.start_ns, "Duration": self.duration_ns, "RequestHost": self.host,
            "RequestMethod": self.method, "RequestPath": self.path, "RequestScheme": self.scheme,
            "RequestProtocol": "HTTP/1.1", "DownstreamStatus": self.status, "status_source": "buffered",
            "ClientHost": self.client_addr.rsplit(":", 1)[0], "ClientAddr": self.client_addr,
            "request_User-Agent": self.user_agent, "dd.trace_id": str(self.trace_id),
            "dd.trace_id_high": f"{self.trace_id_high:016x}", "dd.span_id": str(self.span_id),
            "dd.parent_id": "0", "dd.service": self.service, "dd.env": self.env, "dd.version": self.version,
            "dd.name": "traefik.request", "dd.resource": self.host, "dd.error": int(self.status >= 500),
            "dd.error_type": self.error_type, "dd.sampling_priority": self.sampling_priority, "dd.sampling_mechanism": 0,
            "dd.sample_rate": 1.0, "dd.origin": "", "dd.propagation_error": "", "dd.propagation_tags": "",
        }
        return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)

    def json_line(self) -> bytes:
        """The line Traefik prints for it with `log.format: json` (as in testdata/traefik-3.7.15/json.log)."""
        import json
        message = json.dumps(self.text(), ensure_ascii=False)
        return ('{"level":"info","entryPointName":"web","routerName":"web@file","middlewareName":"dd@file",'
                f'"middlewareType":"wasm","time":"2026-11-25T14:49:47Z","message":{message}}}\n').encode()

    def console_line(self) -> bytes:
        """The line Traefik prints with `log.format: common` and colours."""
        return ("\x1b[90m2026-11-25T14:49:47Z\x1b[0m \x1b[32mINF\x1b[0m \x1b[1m" + self.text()
                + "\x1b[0m \x1b[36mentryPointName=\x1b[0mweb \x1b[36mmiddlewareName=\x1b[0mdd@file "
                "\x1b[36mmiddlewareType=\x1b[0mwasm \x1b[36mrouterName=\x1b[0mweb@file\n").encode()

    def frame(self, version: int = 1) -> bytes:
        """The binary frame the guest writes to the FIFO (and sends as one datagram in network mode)."""
        import msgpack
        body = msgpack.packb([
            self.start_ns, self.duration_ns, self.host, self.method, self.path, self.scheme, "HTTP/1.1",
            self.status, "buffered", self.client_addr, self.user_agent, self.trace_id_high, self.trace_id,
            self.span_id, 0, self.sampling_priority, 0, 1.0, self.service, self.env, self.version, "traefik.request", self.host,
            self.status >= 500, "", "", "", {}, False,
        ], use_bin_type=True)
        return b"TD" + bytes([version, 0]) + len(body).to_bytes(2, "little") + body


def plugin_records(prefix: str, count: int, start: int = 0) -> list[PluginRecord]:
    """`count` records with unique paths `<prefix>/<n>` and unique span and trace ids (random base)."""
    import random
    base = random.SystemRandom().randrange(1 << 40, 1 << 61)
    now = time.time_ns()
    statuses = (200, 200, 201, 404, 503)
    return [PluginRecord(span_id=base + n, trace_id=base + 7 * n + 3, path=f"{prefix}/{n}",
                         host=("a.test", "b.test", "c.test")[n % 3], status=statuses[n % len(statuses)],
                         start_ns=now + n * 1000, trace_id_high=(now // 1_000_000_000) << 32)
            for n in range(start, start + count)]


def span_path(span: dict[str, Any]) -> str:
    """The request path of a span, from `http.url`."""
    url = span.get("meta", {}).get("http.url", "")
    return "/" + url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url


def spans_by_path(agent: "TestAgent", prefix: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for s in agent.spans():
        p = span_path(s)
        if p.startswith(prefix):
            out.setdefault(p, []).append(s)
    return out
