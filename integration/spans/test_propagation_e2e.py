"""Trace context propagation and sampling, end to end, against the official Python tracer.

    client -> real Traefik -> plugin (pipe mode) -> FIFO -> relay -> ddapm-test-agent
                                 | injects its context upstream
                                 v
                              aiohttp backend traced by ddtrace (traced_backend.py) -> same test agent

For each propagation style (datadog, tracecontext, b3 multi-header) the plugin extracts and injects
only that style and ddtrace is set to the same style (`DD_TRACE_PROPAGATION_STYLE`; ddtrace calls B3
multi-header `b3multi`); `default` leaves both at their defaults (the plugin's `datadog,tracecontext`,
ddtrace's `datadog,tracecontext,baggage`), the common deployment. Both tracers' spans are read back from the test agent, and the backend also
echoes the trace headers it received, so every hop is checked:

- no incoming context: one plugin span and one backend span in the same (128-bit) trace, the backend
  span a child of the plugin span, the sampling decision carried;
- incoming context T/P in the style: the plugin span continues it and the backend joins it;
- Synthetics (`x-datadog-origin: synthetics`, parent 0): the plugin span is the root of trace T with
  `_dd.origin`, the backend span carries the origin where the style can (not B3);
- `trustIncoming: false`: a new trace, and the backend joins the new one;
- `sampleRate: 0`: priority -1 by rule (`_dd.p.dm=-3`), the backend honours it, every span still arrives;
  `sampleRate: 0.5`: each trace kept (2) or dropped (-1) exactly as dd-trace's Knuth rule decides for its id.

The test agent stores spans as received and computes no stats of its own (`/test/session/stats`
holds only client-computed stats, which neither the relay nor this backend send), so the agent-side
`synthetics:true` stats dimension is not observable here; it derives from `_dd.origin`, which is
asserted on the spans.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from datadog import Relay, StatsdListener, TestAgent
from harness import DD_CONFIG, READY_PREFIX, Route, Traefik
from pipeline import FIFO_NAME, GUEST_DIR, relay_args
from traced_backend import TRACE_HEADERS, TracedBackend

STYLES = ["datadog", "tracecontext", "b3", "default"]
PLUGIN_SERVICE = "edge"
PLUGIN_NAME = "traefik.request"
BACKEND_SERVICE = "backend"
BACKEND_NAME = "aiohttp.request"

# The headers the plugin writes per style (and nothing else reaches the backend).
STYLE_HEADERS = {
    "datadog": {"x-datadog-trace-id", "x-datadog-parent-id", "x-datadog-sampling-priority", "x-datadog-tags"},
    "tracecontext": {"traceparent", "tracestate"},
    "b3": {"x-b3-traceid", "x-b3-spanid", "x-b3-sampled"},
}
STYLE_HEADERS["default"] = STYLE_HEADERS["datadog"] | STYLE_HEADERS["tracecontext"]

# An incoming context: trace T (128-bit: high, low), parent P.
T_HIGH = 0x6553F10000000000
T_LOW = 0x1122334455667788
P = 0x0BADC0FFEE123456
T_HEX = f"{T_HIGH:016x}{T_LOW:016x}"
U64 = (1 << 64) - 1


def incoming(style: str, *, priority: int = 2) -> dict[str, str]:
    """Client headers carrying T/P with `priority` (B3: 1 -> sampled, 2 -> debug flag), mechanism 4
    (manual) where the style can say it. `default`: Datadog and W3C headers together, as ddtrace sends."""
    if style == "default":
        return {**incoming("datadog", priority=priority), **incoming("tracecontext", priority=priority)}
    if style == "datadog":
        return {"x-datadog-trace-id": str(T_LOW), "x-datadog-parent-id": str(P),
                "x-datadog-sampling-priority": str(priority),
                "x-datadog-tags": f"_dd.p.tid={T_HIGH:016x},_dd.p.dm=-4"}
    if style == "tracecontext":
        return {"traceparent": f"00-{T_HEX}-{P:016x}-{'01' if priority > 0 else '00'}",
                "tracestate": f"dd=s:{priority};p:{P:016x};t.dm:-4,other=vendor"}
    headers = {"x-b3-traceid": T_HEX, "x-b3-spanid": f"{P:016x}"}
    if priority == 2:
        headers["x-b3-flags"] = "1"
    else:
        headers["x-b3-sampled"] = "1" if priority > 0 else "0"
    return headers


def url_path(span: dict[str, Any]) -> str:
    url = span.get("meta", {}).get("http.url", "")
    if "://" not in url:
        return url
    rest = url.split("://", 1)[1]
    return "/" + rest.split("/", 1)[1] if "/" in rest else "/"


def prio(span: dict[str, Any]) -> float | None:
    return span.get("metrics", {}).get("_sampling_priority_v1")


@dataclass
class Pair:
    """What one request produced: the plugin span, the backend span, the backend's echo."""

    plugin: dict[str, Any]
    backend: dict[str, Any]
    echo: dict[str, Any]

    def describe(self) -> str:
        p, b = self.plugin, self.backend
        return (f"plugin trace_id={p['trace_id']} tid={p['meta'].get('_dd.p.tid')} span_id={p['span_id']} "
                f"parent_id={p['parent_id']} prio={prio(p)} dm={p['meta'].get('_dd.p.dm')} | "
                f"backend trace_id={b['trace_id']} tid={b['meta'].get('_dd.p.tid')} span_id={b['span_id']} "
                f"parent_id={b['parent_id']} prio={prio(b)} dm={b['meta'].get('_dd.p.dm')} | "
                f"headers={self.echo['headers']}")


class Stack:
    """Test agent + relay (pipe) + ddtrace backend + Traefik with one route per plugin configuration."""

    def __init__(self, tmp: Path, style: str):
        self.style = style
        self.tmp = tmp
        self.n = 0
        self._started: list[Any] = []  # stopped in reverse order, also when starting fails midway
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        tmp, style = self.tmp, self.style
        self.agent = TestAgent(tmp / "agent")
        self._started.append(self.agent.stop)
        self.agent.start()
        self.statsd = StatsdListener()
        self._started.append(self.statsd.close)
        run_dir = tmp / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        fifo = run_dir / FIFO_NAME
        self.relay = Relay(tmp / "relay", relay_args(self.agent, self.statsd, "--pipe", str(fifo))
                           + ["--flush-interval", "100ms"])
        self._started.append(self.relay.stop)
        self.relay.start()
        deadline = time.monotonic() + 10
        while not fifo.exists():
            assert time.monotonic() < deadline, f"relay did not create {fifo}: {self.relay.log()}"
            time.sleep(0.05)
        self.backend = TracedBackend(tmp / "backend.log", self.agent.url, style, service=BACKEND_SERVICE)
        self._started.append(self.backend.stop)
        base: dict[str, Any] = {**DD_CONFIG, "mode": "pipe", "pipePath": f"{GUEST_DIR}/{FIFO_NAME}"}
        if style != "default":
            base.update({"propagationStyleExtract": style, "propagationStyleInject": style})
        middlewares = {
            "main": base,
            # Synthetics sends Datadog headers whatever the style under test.
            "synth": {**base, "propagationStyleExtract": "datadog"} if style != "default" else base,
            "untrusted": {**base, "trustIncoming": False},
            "drop": {**base, "sampleRate": 0},
            "half": {**base, "sampleRate": 0.5},
        }
        self.traefik = Traefik(tmp / "traefik", self.backend,  # type: ignore[arg-type]
                               routes=[Route(name, [name]) for name in middlewares],
                               middlewares=middlewares, mounts=[f"{run_dir}:{GUEST_DIR}"])
        self._started.append(self.traefik.stop)
        self.traefik.start()

    def stop(self) -> None:
        while self._started:
            stop = self._started.pop()
            try:
                stop()
            except Exception as e:  # keep stopping the others
                print(f"stop failed: {e!r}")

    def send(self, route: str, case: str, headers: dict[str, str] | None = None) -> tuple[str, dict[str, Any]]:
        """One GET through `route`; returns its unique path and the backend's echo."""
        self.n += 1
        path = f"/e2e/{self.style}/{case}/{self.n}"
        r = requests.get(self.traefik.url(route) + path,
                         headers={"Host": f"{self.style}.e2e.test", "User-Agent": "e2e-client/1", **(headers or {})},
                         timeout=10)
        assert r.status_code == 200, (r.status_code, r.text)
        assert r.headers.get("X-Backend") == "1"
        return path, r.json()

    def spans_by_path(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for s in self.agent.spans():
            p = url_path(s)
            if not p.startswith(READY_PREFIX):
                out.setdefault(p, []).append(s)
        return out

    def collect(self, sent: dict[str, dict[str, Any]], timeout: float = 15.0, settle: float = 0.5) -> dict[str, Pair]:
        """Waits for the plugin span and the backend span of every path in `sent`, then `settle`
        seconds more; asserts exactly one of each per request, and nothing else for these paths."""
        deadline = time.monotonic() + timeout

        def complete(got: dict[str, list[dict[str, Any]]]) -> bool:
            return all({s["service"] for s in got.get(p, [])} >= {PLUGIN_SERVICE, BACKEND_SERVICE} for p in sent)

        got = self.spans_by_path()
        while not complete(got) and time.monotonic() < deadline:
            time.sleep(0.1)
            got = self.spans_by_path()
        time.sleep(settle)
        got = self.spans_by_path()
        pairs: dict[str, Pair] = {}
        problems = []
        for path, echo in sent.items():
            spans = got.get(path, [])
            plugin = [s for s in spans if s["service"] == PLUGIN_SERVICE]
            backend = [s for s in spans if s["service"] == BACKEND_SERVICE]
            other = [s for s in spans if s["service"] not in (PLUGIN_SERVICE, BACKEND_SERVICE)]
            if len(plugin) != 1 or len(backend) != 1 or other:
                problems.append(f"{path}: {len(plugin)} plugin, {len(backend)} backend, {len(other)} other spans; "
                                f"(service, trace_id, span_id, parent_id): "
                                f"{[(s['service'], s['trace_id'], s['span_id'], s['parent_id']) for s in spans]}")
                continue
            assert plugin[0]["name"] == PLUGIN_NAME and plugin[0]["type"] == "web"
            assert backend[0]["name"] == BACKEND_NAME
            pairs[path] = Pair(plugin[0], backend[0], echo)
        assert problems == [], (
            "\n".join(problems) + f"\nrelay log:\n{self.relay.log()[-1500:]}\nbackend log:\n{self.backend.log()[-1500:]}"
        )
        failures = self.agent.check_failures()
        assert failures == "", f"test agent trace checks failed:\n{failures[-3000:]}"
        return pairs


@pytest.fixture(scope="module", params=STYLES)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp(f"prop-{request.param}"), request.param)
    try:
        yield s
    finally:
        s.stop()


# ------------------------------------------------------------------------------------ checks --

def tid_of(span: dict[str, Any]) -> str | None:
    return span["meta"].get("_dd.p.tid")


def check_child(pair: Pair) -> None:
    """The backend span is the plugin span's child, in the same trace, with the same decision."""
    p, b = pair.plugin, pair.backend
    assert b["trace_id"] == p["trace_id"], pair.describe()
    assert tid_of(b) == tid_of(p), pair.describe()
    assert b["parent_id"] == p["span_id"], pair.describe()
    # The backend's own view while handling the request agrees with what it reported.
    span = pair.echo["span"]
    assert (span["trace_id"], span["span_id"], span["parent_id"]) == (b["trace_id"], b["span_id"], b["parent_id"])
    want_128 = f"{int(tid_of(p) or '0', 16):016x}{p['trace_id']:016x}"
    assert span["trace_id_128"] == want_128, pair.describe()


def check_injected(style: str, pair: Pair) -> None:
    """The backend received exactly the plugin's context in the style, and no other style's headers."""
    if style == "default":
        got = pair.echo["headers"]
        for part in ("datadog", "tracecontext"):
            check_injected(part, Pair(pair.plugin, pair.backend,
                                      {**pair.echo, "headers": {k: v for k, v in got.items()
                                                                if k in STYLE_HEADERS[part] or (
                                                                    part == "datadog" and k == "x-datadog-origin")}}))
        assert set(got) <= STYLE_HEADERS["default"] | {"x-datadog-origin"}, pair.describe()
        return
    p = pair.plugin
    got = pair.echo["headers"]
    tid = tid_of(p)
    prio_ = int(prio(p))  # type: ignore[arg-type]
    dm = p["meta"]["_dd.p.dm"]
    trace_hex = f"{int(tid or '0', 16):016x}{p['trace_id']:016x}"
    origin = p["meta"].get("_dd.origin")
    if style == "datadog":
        tags = ",".join(([f"_dd.p.tid={tid}"] if tid else []) + ([f"_dd.p.dm={dm}"] if prio_ > 0 else []))
        want = {"x-datadog-trace-id": str(p["trace_id"]), "x-datadog-parent-id": str(p["span_id"]),
                "x-datadog-sampling-priority": str(prio_)}
        if tags:
            want["x-datadog-tags"] = tags
        if origin:
            want["x-datadog-origin"] = origin
    elif style == "tracecontext":
        dd = f"dd=s:{prio_};p:{p['span_id']:016x}" + (f";o:{origin}" if origin else "") + (
            f";t.dm:{dm}" if prio_ > 0 else "")
        want = {"traceparent": f"00-{trace_hex}-{p['span_id']:016x}-{'01' if prio_ > 0 else '00'}",
                "tracestate": dd}
    else:
        want = {"x-b3-traceid": trace_hex if tid else f"{p['trace_id']:016x}",
                "x-b3-spanid": f"{p['span_id']:016x}", "x-b3-sampled": "1" if prio_ > 0 else "0"}
    # tracestate may keep other vendors' members after ours.
    if "tracestate" in want and "tracestate" in got and got["tracestate"].startswith(want["tracestate"] + ","):
        want["tracestate"] = got["tracestate"]
    assert got == want, pair.describe()


def check_new_trace(pair: Pair, t0: float, t1: float) -> None:
    """A trace the plugin started: root, 128-bit id whose high half is the start second << 32."""
    p = pair.plugin
    assert p["parent_id"] == 0, pair.describe()
    tid = tid_of(p)
    assert tid is not None and len(tid) == 16, pair.describe()
    high = int(tid, 16)
    assert high & 0xFFFF_FFFF == 0 and int(t0) - 2 <= high >> 32 <= int(t1) + 2, pair.describe()
    assert 0 < p["trace_id"] <= U64 and 0 < p["span_id"] < (1 << 63)


# ------------------------------------------------------------------------------------- tests --

def test_no_incoming_context_backend_joins_plugin_trace(stack: Stack) -> None:
    t0 = time.time()
    sent = dict(stack.send("main", "fresh") for _ in range(3))
    t1 = time.time()
    pairs = stack.collect(sent)
    trace_ids = set()
    for pair in pairs.values():
        check_new_trace(pair, t0, t1)
        check_child(pair)
        check_injected(stack.style, pair)
        assert prio(pair.plugin) == 1.0 and pair.plugin["meta"]["_dd.p.dm"] == "-0", pair.describe()
        assert prio(pair.backend) == prio(pair.plugin), pair.describe()
        assert pair.echo["span"]["sampling_priority"] == 1
        if stack.style in ("tracecontext", "default"):
            # ddtrace records the W3C `p:` (last Datadog parent) it received: the plugin span.
            assert pair.backend["meta"].get("_dd.parent_id") == (
                f"{pair.plugin['span_id']:016x}" if stack.style == "tracecontext" else None), pair.describe()
        trace_ids.add(pair.plugin["trace_id"])
    assert len(trace_ids) == len(pairs)  # one trace per request
    print(f"[{stack.style}] no context: {next(iter(pairs.values())).describe()}")


def test_incoming_context_is_continued(stack: Stack) -> None:
    # Datadog and W3C carry priority 2 and mechanism 4; B3 carries only sampled (priority 1).
    priority = 1 if stack.style == "b3" else 2
    path, echo = stack.send("main", "continued", incoming(stack.style, priority=priority))
    pair = stack.collect({path: echo})[path]
    p = pair.plugin
    assert p["trace_id"] == T_LOW, pair.describe()
    assert tid_of(p) == f"{T_HIGH:016x}", pair.describe()
    assert p["parent_id"] == P, pair.describe()
    assert prio(p) == float(priority), pair.describe()
    assert p["meta"]["_dd.p.dm"] == ("-0" if stack.style == "b3" else "-4"), pair.describe()
    check_child(pair)
    check_injected(stack.style, pair)
    assert prio(pair.backend) == prio(p), pair.describe()
    if stack.style != "b3":
        assert pair.backend["meta"].get("_dd.p.dm") == "-4", pair.describe()
    if stack.style in ("tracecontext", "default"):  # other vendors' tracestate members travel on
        assert pair.echo["headers"]["tracestate"].endswith(",other=vendor"), pair.describe()
    print(f"[{stack.style}] continued: {pair.describe()}")


@pytest.mark.parametrize("stack", ["b3"], indirect=True)
def test_b3_debug_flag_is_kept_by_plugin_and_sent_as_sampled(stack: Stack) -> None:
    """B3 `x-b3-flags: 1` (debug) is priority 2 for the plugin span; upstream it goes as
    `x-b3-sampled: 1`, as nginx-datadog's dd-trace-cpp injects B3, so ddtrace sees priority 1."""
    path, echo = stack.send("main", "debug", incoming("b3", priority=2))
    pair = stack.collect({path: echo})[path]
    assert (pair.plugin["trace_id"], pair.plugin["parent_id"], prio(pair.plugin)) == (T_LOW, P, 2.0)
    check_child(pair)
    check_injected("b3", pair)
    assert "x-b3-flags" not in pair.echo["headers"]
    assert prio(pair.backend) == 1.0, pair.describe()


def test_synthetics_origin(stack: Stack) -> None:
    t = 4242424242424242424
    path, echo = stack.send("synth", "synthetics", {
        "x-datadog-origin": "synthetics", "x-datadog-trace-id": str(t),
        "x-datadog-parent-id": "0", "x-datadog-sampling-priority": "1"})
    pair = stack.collect({path: echo})[path]
    p, b = pair.plugin, pair.backend
    assert (p["trace_id"], p["parent_id"]) == (t, 0), pair.describe()
    assert tid_of(p) is None  # a 64-bit trace stays 64-bit
    assert p["meta"]["_dd.origin"] == "synthetics", pair.describe()
    assert prio(p) == 1.0
    check_child(pair)
    check_injected(stack.style, pair)
    assert prio(b) == 1.0
    if stack.style == "b3":
        # B3 has no field for the origin (ddtrace's b3multi reads none), so the backend cannot know.
        assert "_dd.origin" not in b["meta"], pair.describe()
        assert pair.echo["span"]["origin"] is None
    else:
        assert b["meta"].get("_dd.origin") == "synthetics", pair.describe()
        assert pair.echo["span"]["origin"] == "synthetics"
    # The agent's `synthetics` stats dimension is computed by the real agent from `_dd.origin`; the test
    # agent computes no stats, and nobody here sends client-computed ones, so there is nothing more to see.
    stats = requests.get(f"{stack.agent.url}/test/session/stats", timeout=10)
    assert stats.status_code == 200 and stats.json() == []
    print(f"[{stack.style}] synthetics: {pair.describe()}")


def test_untrusted_incoming_context_starts_a_new_trace(stack: Stack) -> None:
    t0 = time.time()
    path, echo = stack.send("untrusted", "untrusted", incoming(stack.style, priority=2))
    t1 = time.time()
    pair = stack.collect({path: echo})[path]
    p = pair.plugin
    check_new_trace(pair, t0, t1)
    assert p["trace_id"] != T_LOW and tid_of(p) != f"{T_HIGH:016x}", pair.describe()
    assert prio(p) == 1.0 and p["meta"]["_dd.p.dm"] == "-0", pair.describe()
    check_child(pair)
    check_injected(stack.style, pair)  # the client's T/P never reach the backend
    assert str(T_LOW) not in str(pair.echo["headers"]) and f"{T_LOW:016x}" not in str(pair.echo["headers"])
    assert prio(pair.backend) == 1.0
    print(f"[{stack.style}] untrusted: {pair.describe()}")


def test_sample_rate_zero_is_honoured_and_every_span_arrives(stack: Stack) -> None:
    t0 = time.time()
    sent = dict(stack.send("drop", "drop") for _ in range(5))
    t1 = time.time()
    pairs = stack.collect(sent)  # all 5 plugin spans and all 5 backend spans arrived
    for pair in pairs.values():
        p, b = pair.plugin, pair.backend
        check_new_trace(pair, t0, t1)
        assert prio(p) == -1.0 and p["meta"]["_dd.p.dm"] == "-3", pair.describe()
        assert p["metrics"].get("_dd.rule_psr") == 0.0, pair.describe()
        check_child(pair)
        check_injected(stack.style, pair)
        # B3 can only say "not sampled" (0); Datadog and W3C carry -1 itself.
        assert prio(b) == (0.0 if stack.style == "b3" else -1.0), pair.describe()
        assert pair.echo["span"]["sampling_priority"] == int(prio(b))  # type: ignore[arg-type]
    print(f"[{stack.style}] sampleRate 0: {next(iter(pairs.values())).describe()}")


def test_no_other_style_headers_leak_through(stack: Stack) -> None:
    """A client sending every style's headers: the backend sees only the plugin's, in the style."""
    forged = {**incoming("datadog"), **incoming("tracecontext"), **incoming("b3", priority=1), "b3": "1-2-1"}
    path, echo = stack.send("untrusted", "forged", forged)
    pair = stack.collect({path: echo})[path]
    assert set(pair.echo["headers"]) == STYLE_HEADERS[stack.style], pair.describe()
    assert set(pair.echo["headers"]) <= set(TRACE_HEADERS)
    check_child(pair)
    check_injected(stack.style, pair)


KNUTH_FACTOR = 1111111111111111111  # ddtrace.internal.constants.SAMPLING_KNUTH_FACTOR


def knuth_keeps(trace_id_low: int, rate: float) -> bool:
    """ddtrace's SamplingRule.sample (ddtrace/_trace/sampling_rule.py): the same trace is kept by every tracer."""
    return (trace_id_low * KNUTH_FACTOR) % (1 << 64) <= rate * U64


def test_sample_rate_half_follows_the_knuth_rule(stack: Stack) -> None:
    t0 = time.time()
    sent = dict(stack.send("half", "half") for _ in range(16))
    t1 = time.time()
    pairs = stack.collect(sent)
    kept = 0
    for pair in pairs.values():
        p, b = pair.plugin, pair.backend
        check_new_trace(pair, t0, t1)
        keep = knuth_keeps(p["trace_id"], 0.5)
        kept += keep
        assert prio(p) == (2.0 if keep else -1.0), pair.describe()
        assert p["meta"]["_dd.p.dm"] == "-3" and p["metrics"].get("_dd.rule_psr") == 0.5, pair.describe()
        check_child(pair)
        check_injected(stack.style, pair)
        if stack.style == "b3":  # sampled 1/0 only
            assert prio(b) == (1.0 if keep else 0.0), pair.describe()
        else:
            assert prio(b) == prio(p), pair.describe()
            assert b["meta"].get("_dd.p.dm") == ("-3" if keep else None), pair.describe()
    print(f"[{stack.style}] sampleRate 0.5: {kept} of {len(pairs)} kept")
