"""The plugin's spans, as the trace agent receives them, compared field by field with a committed snapshot.

A fixed set of requests (hosts, methods, statuses; with and without incoming trace context, Synthetics,
a dropped priority, oversized tags) goes through the production path: real Traefik -> plugin (pipe
mode, default propagation settings) -> relay -> ddapm-test-agent. Every span is turned into its
snapshot form and compared with `testdata/snapshots/plugin_spans.json`, each field separately, so a
renamed tag, a changed type or a new field is one named difference.

Masked, because they differ on every run (each is first checked for its form):
- `span_id` -> "<span_id>" (63-bit, non-zero);
- `trace_id` -> "<new trace_id>" when the plugin started the trace (kept when the client sent it);
- `meta._dd.p.tid` -> "<start second << 32>" when the plugin started the trace (kept when sent);
- `start` -> "<start>" (within the request's time window), `duration` -> "<duration>" (positive, within it).
Everything else is compared as is: `parent_id`, `peer.hostname` (127.0.0.1), `http.useragent` (set by
the test), sampling metrics, propagation tags.

Regenerate after an intended schema change, then review the diff of the JSON file:

    UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest integration/spans/test_span_snapshot.py -q -p no:cacheprovider
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from harness import REPO_DIR
from pipeline import start_pipe_pipeline

SNAPSHOT = REPO_DIR / "testdata" / "snapshots" / "plugin_spans.json"
UPDATE = os.environ.get("UPDATE_SNAPSHOTS", "") not in ("", "0")
USER_AGENT = "snapshot-client/1.0"

T_HIGH = 0x6553F10000000000
T_LOW = 0x1122334455667788
P = 0x0BADC0FFEE123456
W3C_LOW = 0x0102030405060708
SYNTH_TRACE = 4242424242424242424
DROP_TRACE = 777
BIG_TAGS_TRACE = 888


@dataclass
class Req:
    label: str
    method: str
    host: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    # What the client sent and the span must keep unmasked.
    known_trace_id: int | None = None
    known_tid: str | None = None
    t_before: int = 0
    t_after: int = 0

    @property
    def path(self) -> str:
        return f"/snap/{self.label}"

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "host": self.host, "path": self.path, "status": self.status,
                "headers": dict(sorted(self.headers.items()))}


REQUESTS = [
    Req("01-get-200", "GET", "a.test", 200),
    Req("02-post-201", "POST", "b.test", 201),
    Req("03-put-404", "PUT", "a.test", 404),
    Req("04-delete-500", "DELETE", "c.test", 500),
    Req("05-get-503", "GET", "b.test", 503),
    Req("06-head-200", "HEAD", "a.test", 200),
    Req("07-get-301", "GET", "c.test", 301),
    Req("08-patch-429", "PATCH", "a.test", 429),
    Req("09-datadog-context", "GET", "a.test", 200, {
        "x-datadog-trace-id": str(T_LOW), "x-datadog-parent-id": str(P), "x-datadog-sampling-priority": "2",
        "x-datadog-tags": f"_dd.p.tid={T_HIGH:016x},_dd.p.dm=-4,_dd.p.usr.id=dXNlcg=="},
        known_trace_id=T_LOW, known_tid=f"{T_HIGH:016x}"),
    Req("10-tracecontext-context", "POST", "b.test", 200, {
        "traceparent": f"00-{T_HIGH:016x}{W3C_LOW:016x}-{P:016x}-01",
        "tracestate": f"dd=s:2;p:{P:016x};o:rum;t.dm:-4,other=vendor"},
        known_trace_id=W3C_LOW, known_tid=f"{T_HIGH:016x}"),
    Req("11-synthetics", "GET", "c.test", 200, {
        "x-datadog-origin": "synthetics", "x-datadog-trace-id": str(SYNTH_TRACE), "x-datadog-parent-id": "0",
        "x-datadog-sampling-priority": "1"}, known_trace_id=SYNTH_TRACE),
    Req("12-datadog-priority-0-error", "GET", "a.test", 500, {
        "x-datadog-trace-id": str(DROP_TRACE), "x-datadog-parent-id": str(P), "x-datadog-sampling-priority": "0"},
        known_trace_id=DROP_TRACE),
    Req("13-b3-not-extracted-by-default", "GET", "b.test", 200, {
        "x-b3-traceid": f"{T_HIGH:016x}{T_LOW:016x}", "x-b3-spanid": f"{P:016x}", "x-b3-sampled": "1"}),
    Req("14-datadog-oversized-tags", "GET", "c.test", 200, {
        "x-datadog-trace-id": str(BIG_TAGS_TRACE), "x-datadog-parent-id": str(P), "x-datadog-sampling-priority": "1",
        "x-datadog-tags": "_dd.p.big=" + "x" * 600}, known_trace_id=BIG_TAGS_TRACE),
]


def send(port: int, req: Req) -> None:
    req.t_before = time.time_ns()
    r = requests.request(req.method, f"http://127.0.0.1:{port}{req.path}?status={req.status}",
                         headers={"Host": req.host, "User-Agent": USER_AGENT, **req.headers},
                         allow_redirects=False, timeout=10)
    req.t_after = time.time_ns()
    assert r.status_code == req.status, (req.label, r.status_code)


def snapshot_form(req: Req, span: dict[str, Any]) -> dict[str, Any]:
    """The span with the run-dependent fields checked and masked."""
    s = json.loads(json.dumps(span))  # deep copy
    assert 0 < s["span_id"] < (1 << 63), s
    s["span_id"] = "<span_id>"
    if req.known_trace_id is None:
        assert 0 < s["trace_id"] < (1 << 64), s
        s["trace_id"] = "<new trace_id>"
    meta = s.get("meta", {})
    tid = meta.get("_dd.p.tid")
    if tid is not None and req.known_tid is None:
        high = int(tid, 16)
        assert len(tid) == 16 and high & 0xFFFF_FFFF == 0, tid
        assert req.t_before // 10**9 - 1 <= high >> 32 <= req.t_after // 10**9 + 1, tid
        meta["_dd.p.tid"] = "<start second << 32>"
    assert req.t_before - 2_000_000 <= s["start"] <= req.t_after, (req.label, s["start"], req.t_before)
    assert 0 < s["duration"] <= req.t_after - req.t_before + 2_000_000, (req.label, s["duration"])
    s["start"] = "<start>"
    s["duration"] = "<duration>"
    return s


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k in ("meta", "metrics", "span", "request", "headers"):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    diffs = []
    for label in sorted(set(expected) | set(actual)):
        if label not in actual:
            diffs.append(f"{label}: in the snapshot, not produced")
            continue
        if label not in expected:
            diffs.append(f"{label}: produced, not in the snapshot")
            continue
        e, a = flatten(expected[label]), flatten(actual[label])
        for k in sorted(set(e) | set(a)):
            if k not in a:
                diffs.append(f"{label}: {k} missing (snapshot: {e[k]!r})")
            elif k not in e:
                diffs.append(f"{label}: {k} unexpected (got {a[k]!r})")
            elif type(e[k]) is not type(a[k]) or e[k] != a[k]:
                diffs.append(f"{label}: {k}: snapshot {e[k]!r}, got {a[k]!r}")
    return diffs


def test_plugin_spans_match_snapshot(tmp_path: Path, traefik_factory: Any) -> None:
    p = start_pipe_pipeline(tmp_path, traefik_factory, relay_extra=["--flush-interval", "100ms"])
    try:
        for req in REQUESTS:
            send(p.traefik.port("web"), req)
        want = {r.path for r in REQUESTS}
        deadline = time.monotonic() + 10
        while True:
            got = p.spans(prefix="/snap/")
            if want <= got.keys() or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        time.sleep(0.5)  # duplicates would show up
        got = p.spans(prefix="/snap/")
        assert sorted(got) == sorted(want)
        assert {k: len(v) for k, v in got.items() if len(v) != 1} == {}
        assert p.agent.check_failures() == ""
    finally:
        p.relay.stop()
        p.agent.stop()
        p.statsd.close()

    actual = {r.label: {"request": r.describe(), "span": snapshot_form(r, got[r.path][0])} for r in REQUESTS}
    if UPDATE:
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        doc = {"_about": "Plugin spans as the trace agent receives them; written by "
                         "integration/spans/test_span_snapshot.py (regenerate: UPDATE_SNAPSHOTS=1 .venv/bin/python -m "
                         "pytest integration/spans/test_span_snapshot.py -q -p no:cacheprovider). Masked: span_id, "
                         "generated trace_id and _dd.p.tid, start, duration.",
               "spans": actual}
        SNAPSHOT.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return
    if not SNAPSHOT.exists():
        pytest.fail(f"{SNAPSHOT} missing; create it with UPDATE_SNAPSHOTS=1 (see this file's docstring)")
    expected = json.loads(SNAPSHOT.read_text())["spans"]
    diffs = differences(expected, actual)
    assert diffs == [], (f"{len(diffs)} differences from {SNAPSHOT.relative_to(REPO_DIR)} "
                         "(UPDATE_SNAPSHOTS=1 regenerates it if the change is intended):\n" + "\n".join(diffs))
