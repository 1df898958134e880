"""The line parser on Traefik's real, stored output (testdata/traefik-*/, made by
capture_samples.py): every format yields the same records and the config error line."""

from __future__ import annotations

from pathlib import Path

import pytest

import lines
from harness import READY_PREFIX, REPO_DIR

SAMPLE_DIRS = sorted((REPO_DIR / "testdata").glob("traefik-*"))
FORMATS = ["json", "console-color", "console-nocolor"]
# Fields that differ between runs (time, ids, client ports).
VOLATILE = {"StartUTC", "start_ns", "Duration", "ClientAddr", "dd.trace_id", "dd.trace_id_high", "dd.span_id"}
# (path, method, RequestHost, status, status_source) of capture_samples.LOAD and its WS/SSE requests.
EXPECTED = [
    ("/r/1", "GET", "a.test", 200, "buffered"),
    ("/r/2", "POST", "b.test", 503, "buffered"),
    ("/r/3", "GET", "c.test", 404, "buffered"),
    ("/r/4", "HEAD", "a.test", 301, "buffered"),
    ("/ws/1", "GET", "ws.test", 101, "upgrade"),
    ("/sse/1", "GET", "sse.test", 0, "unknown"),
]


def test_samples_exist() -> None:
    assert SAMPLE_DIRS, "no testdata/traefik-*/ samples: run integration/capture_samples.py"
    for d in SAMPLE_DIRS:
        assert sorted(p.name for p in d.glob("*.log")) == sorted(f"{f}.log" for f in FORMATS)


def _load(d: Path, fmt: str) -> str:
    return (d / f"{fmt}.log").read_text(encoding="utf-8")


@pytest.mark.parametrize("sample_dir", SAMPLE_DIRS, ids=[d.name for d in SAMPLE_DIRS])
@pytest.mark.parametrize("fmt", FORMATS)
def test_sample_records(sample_dir: Path, fmt: str) -> None:
    output = _load(sample_dir, fmt)
    if fmt == "console-color":
        assert "\x1b[" in output
    else:
        assert "\x1b[" not in output
    records = [r for r in lines.parse_records(output) if not r.data["RequestPath"].startswith(READY_PREFIX)]
    got = [(r["RequestPath"], r["RequestMethod"], r["RequestHost"], r["DownstreamStatus"], r["status_source"])
           for r in records]
    assert got == EXPECTED
    for r in records:
        assert r.text.startswith(lines.RECORD_PREFIX)
        assert r.lead == ""
        assert r["StartUTC"] == lines.format_start_utc(r["start_ns"])
        assert {k: r.host.get(k) for k in ("level", "routerName", "entryPointName", "middlewareName")} == {
            "level": "info", "routerName": "web@file", "entryPointName": "web", "middlewareName": "dd@file"}
    errors = lines.parse_config_errors(output)
    assert errors, "no config error line"
    for e in errors:
        assert e.text.startswith('traefik-datadog: invalid config: key "bogus": unknown key')
        assert (e.host.get("level"), e.host.get("middlewareName"), e.host.get("routerName")) == (
            "error", "bad@file", "badr@file")


@pytest.mark.parametrize("sample_dir", SAMPLE_DIRS, ids=[d.name for d in SAMPLE_DIRS])
def test_formats_decode_to_the_same_records(sample_dir: Path) -> None:
    def stable(fmt: str) -> list[dict]:
        recs = lines.parse_records(_load(sample_dir, fmt))
        return [{k: v for k, v in r.data.items() if k not in VOLATILE}
                for r in recs if not r.data["RequestPath"].startswith(READY_PREFIX)]

    def error_texts(fmt: str) -> set[str]:
        return {e.text for e in lines.parse_config_errors(_load(sample_dir, fmt))}

    base = stable("json")
    assert len(base) == len(EXPECTED)
    for fmt in FORMATS[1:]:
        assert stable(fmt) == base
        assert error_texts(fmt) == error_texts("json")
