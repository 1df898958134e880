"""Parse the plugin's fallback log lines out of Traefik's captured stdout/stderr.

Traefik writes the guest's ``log`` text into its own log, in one of two formats:

- ``log.format: json``: one JSON object per line,
  ``{"level":"info","entryPointName":"web","routerName":"web@file","middlewareName":"dd@file",
  "middlewareType":"wasm","time":"...","message":"<the guest's text, JSON-escaped>"}``.
- ``log.format: common`` (zerolog console writer):
  ``<time> INF <the guest's text> entryPointName=web middlewareName=dd@file ... routerName=web@file``,
  with ANSI colour codes around the parts unless ``log.noColor: true``.

The guest's text for a record is one JSON object that starts exactly with
``{"marker":"traefik-datadog","schema":1,``. On a bad configuration the guest logs one
error-level line whose text starts with ``traefik-datadog: invalid config:``.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

MARKER = '{"marker":"traefik-datadog"'
RECORD_PREFIX = '{"marker":"traefik-datadog","schema":1,'
CONFIG_ERROR_PREFIX = "traefik-datadog: invalid config:"

# CSI sequences (colours, bold, reset) as zerolog's console writer emits them.
ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")

CONSOLE_LEVELS = {
    "TRC": "trace",
    "DBG": "debug",
    "INF": "info",
    "WRN": "warn",
    "ERR": "error",
    "FTL": "fatal",
    "PNC": "panic",
}
_CONSOLE_HEAD_RE = re.compile(r"^(?P<time>\S+)\s+(?P<level>TRC|DBG|INF|WRN|ERR|FTL|PNC|\?\?\?)\s")
# key=value where value is either a Go-quoted string or a run of non-blanks.
_FIELD_RE = re.compile(r'(?P<key>[A-Za-z_][\w.\-]*)=(?P<value>"(?:[^"\\]|\\.)*"|\S*)')
# Field keys the wasm middleware's logger attaches (trailing key=value in console lines).
HOST_FIELD_KEYS = frozenset(
    {"entryPointName", "routerName", "middlewareName", "middlewareType", "serviceName", "providerName"}
)
_TRAILING_FIELD_RE = re.compile(r'\s+(?P<key>[A-Za-z_][\w.\-]*)=(?P<value>"(?:[^"\\]|\\.)*"|\S*)$')


class LineFormatError(AssertionError):
    """A line carries the plugin's marker but is not a well-formed record."""


@dataclass
class Record:
    """One decoded record line."""

    data: dict[str, Any]  # the guest's JSON object
    host: dict[str, Any]  # fields Traefik added: level, routerName, entryPointName, ...
    text: str  # the guest's text exactly as decoded from the line
    line_no: int  # 1-based line number in the captured output
    line: str  # the raw line (ANSI codes kept)
    lead: str = ""  # message text before the marker (must be empty)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


@dataclass
class ConfigErrorLine:
    text: str  # the guest's text, starting with CONFIG_ERROR_PREFIX
    host: dict[str, Any] = field(default_factory=dict)
    line_no: int = 0
    line: str = ""


def strip_ansi(s: str) -> str:
    return ANSI_RE.sub("", s)


def _unquote_go(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            return json.loads(value)
        except ValueError:
            return value[1:-1]
    return value


def _outer_json(line: str) -> dict[str, Any] | None:
    s = line.strip()
    if not (s.startswith("{") and s.endswith("}")):
        return None
    try:
        obj = json.loads(s)
    except ValueError:
        return None
    if isinstance(obj, dict) and "message" in obj and "level" in obj:
        return obj
    return None


def _host_from_outer(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != "message"}


def _console_head(clean: str) -> dict[str, Any]:
    m = _CONSOLE_HEAD_RE.match(clean)
    if not m:
        return {}
    return {"time": m.group("time"), "level": CONSOLE_LEVELS.get(m.group("level"), m.group("level"))}


def _console_fields(tail: str) -> dict[str, Any]:
    return {m.group("key"): _unquote_go(m.group("value")) for m in _FIELD_RE.finditer(tail)}


def _split_trailing_host_fields(text: str) -> tuple[str, dict[str, Any]]:
    """Removes the trailing ``key=value`` host fields of a console line's message."""
    fields: dict[str, Any] = {}
    while True:
        m = _TRAILING_FIELD_RE.search(text)
        if not m or m.group("key") not in HOST_FIELD_KEYS:
            return text, fields
        fields[m.group("key")] = _unquote_go(m.group("value"))
        text = text[: m.start()]


def _decode_record(text: str, where: str) -> tuple[dict[str, Any], int]:
    """Decodes the JSON object at the start of ``text``; returns it and its end offset."""
    try:
        obj, end = json.JSONDecoder().raw_decode(text)
    except ValueError as e:
        raise LineFormatError(f"{where}: record text is not a JSON object ({e}): {text!r}") from None
    if not isinstance(obj, dict):
        raise LineFormatError(f"{where}: record is not a JSON object: {text!r}")
    return obj, end


def parse_records(output: str) -> list[Record]:
    """Every record line in Traefik's captured output, in order.

    Raises LineFormatError for a line that carries the marker but does not decode.
    """
    records: list[Record] = []
    # Lines end at "\n" only, as Traefik writes them and the relay reads them: str.splitlines()
    # would also split at U+0085 or U+2028, which a client's header can put inside a record.
    for i, raw in enumerate(output.split("\n"), start=1):
        if "traefik-datadog" not in raw:
            continue
        where = f"line {i}"
        outer = _outer_json(raw)
        if outer is not None:
            msg = outer.get("message")
            if not isinstance(msg, str) or MARKER not in msg:
                continue
            start = msg.index(MARKER)
            obj, end = _decode_record(msg[start:], where)
            text = msg[start:]
            if msg[start + end :].strip():
                raise LineFormatError(f"{where}: trailing text after the record: {msg!r}")
            host = _host_from_outer(outer)
            lead = msg[:start]
        else:
            clean = strip_ansi(raw)
            if MARKER not in clean:
                # A JSON-format line whose message is escaped differently, or a broken line.
                if '{\\"marker\\":\\"traefik-datadog\\"' in raw:
                    raise LineFormatError(f"{where}: escaped marker in a line that is not a JSON log line: {raw!r}")
                continue
            start = clean.index(MARKER)
            obj, end = _decode_record(clean[start:], where)
            text = clean[start : start + end]
            host = _console_head(clean)
            head = _CONSOLE_HEAD_RE.match(clean)
            lead = clean[head.end() if head else 0 : start].strip()
            host.update(_console_fields(clean[start + end :]))
        records.append(Record(data=obj, host=host, text=text, line_no=i, line=raw, lead=lead))
    return records


def parse_config_errors(output: str) -> list[ConfigErrorLine]:
    """Every line whose guest text starts with ``traefik-datadog: invalid config:``."""
    found: list[ConfigErrorLine] = []
    for i, raw in enumerate(output.splitlines(), start=1):
        if CONFIG_ERROR_PREFIX not in raw:
            continue
        outer = _outer_json(raw)
        if outer is not None:
            msg = outer.get("message")
            if not isinstance(msg, str) or CONFIG_ERROR_PREFIX not in msg:
                continue
            found.append(
                ConfigErrorLine(
                    text=msg[msg.index(CONFIG_ERROR_PREFIX) :], host=_host_from_outer(outer), line_no=i, line=raw
                )
            )
            continue
        clean = strip_ansi(raw)
        if CONFIG_ERROR_PREFIX not in clean:
            continue
        host = _console_head(clean)
        text, fields = _split_trailing_host_fields(clean[clean.index(CONFIG_ERROR_PREFIX) :].rstrip())
        host.update(fields)
        found.append(ConfigErrorLine(text=text, host=host, line_no=i, line=raw))
    return found


def messages(output: str) -> list[tuple[str, str]]:
    """(level, message) of each JSON line of Traefik's output."""
    out = []
    for raw in output.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict):
            out.append((str(line.get("level")), str(line.get("message"))))
    return out


def format_start_utc(start_ns: int) -> str:
    """What ``StartUTC`` must read for ``start_ns``: RFC 3339 UTC, microseconds, 'Z'."""
    secs, rem = divmod(start_ns, 1_000_000_000)
    base = _dt.datetime.fromtimestamp(secs, tz=_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{rem // 1000:06d}Z"


if __name__ == "__main__":  # pragma: no cover - debugging aid: python lines.py traefik.log
    import sys

    with open(sys.argv[1], encoding="utf-8", errors="replace") as fh:
        content = fh.read()
    for rec in parse_records(content):
        print(rec.line_no, rec.host, json.dumps(rec.data, sort_keys=True))
    for err in parse_config_errors(content):
        print(err.line_no, err.host, err.text)
