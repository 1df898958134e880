"""Datadog metric queries as deploy/datadog/ and the docs write them: where they are, what they
say, and what they return on data that real processes emitted.

- Where: `dashboard_queries` (every metrics query of deploy/datadog/dashboard.json, with the
  dashboard's template variables), `monitor_files` (deploy/datadog/monitors/*.json),
  `terraform_monitors` (deploy/datadog/terraform/*.tf read back into the JSON form, variables
  substituted) and `doc_queries` (the query forms quoted in backticks in a Markdown file).
- What: `parse_query` / `parse_monitor` turn the text into a small tree (numbers, functions,
  + - * /, metric terms with their aggregator, filters, `by` keys and modifiers). Anything the
  grammar below does not know is an error, so a typo anywhere in a query is caught.
- What they return: `Emitted` holds what the test agent and the DogStatsD listeners received;
  `Emitted.problems` says why a metric term would find nothing (unknown name, a tag key the
  metric does not carry, a literal tag value no data has, an aggregation its type does not
  allow), and `evaluate` computes a query over the whole capture as one time bucket: counts
  summed, gauges by their space aggregator, percentiles by nearest rank.

Trace metrics (`trace.<span name>.*`) are not sent by this project: the Datadog agent computes
them from the spans it receives. `Emitted` derives them the way the agent does, from the spans
the test agent received (see `TRACE_SUFFIXES` and `trace_dims`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Union

from harness import REPO_DIR

DATADOG_DIR = REPO_DIR / "deploy" / "datadog"

# Metric namespaces and who emits them: the agent from our spans, the relay (DogStatsD), Traefik's
# own DogStatsD metrics (`metrics.datadog`, prefix `traefik`).
TRACE, RELAY, TRAEFIK = "trace", "relay", "traefik"


def source_of(metric: str) -> str | None:
    if metric.startswith("trace."):
        return TRACE
    if metric.startswith("traefik_datadog."):
        return RELAY
    if metric.startswith("traefik."):
        return TRAEFIK
    return None


# --- grammar -----------------------------------------------------------------------------------

AGGREGATORS = {"avg", "sum", "min", "max", "count"}
PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?)$")
FUNCTIONS = {"default_zero", "abs"}
MODIFIERS = re.compile(r"\.(as_count|as_rate)\(\)|\.rollup\((sum|avg|max|min|count)(?:,\s*\d+)?\)"
                       r"|\.fill\((null|zero|linear|last)(?:,\s*\d+)?\)")
METRIC_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.]*[A-Za-z0-9_]")
MONITOR = re.compile(r"^(?P<tagg>avg|sum|min|max|percentile)\((?P<window>last_\d+[mhdw])\):(?P<expr>.+?)\s*"
                     r"(?P<op>>=|<=|>|<)\s*(?P<threshold>-?\d+(?:\.\d+)?)$", re.S)


class QueryError(ValueError):
    pass


@dataclass(frozen=True)
class Filter:
    """One item between the braces: `*`, `key:value`, `!key:value`, `$var`, `key:$var.value`."""

    key: str | None          # None for `*` and for `...` (a placeholder in prose)
    value: str | None        # None when a template variable (or a placeholder) gives it
    negated: bool = False
    variable: str | None = None

    @property
    def literal(self) -> bool:
        return self.key is not None and self.value is not None


@dataclass(frozen=True)
class Metric:
    metric: str
    aggregator: str | None
    filters: tuple[Filter, ...]
    by: tuple[str, ...]
    modifiers: tuple[str, ...]
    family: bool = False     # `name.*` in prose: any metric under that name

    @property
    def percentile(self) -> float | None:
        m = PERCENTILE.match(self.aggregator or "")
        return float(m.group(1)) if m else None

    @property
    def as_count(self) -> bool:
        return "as_count" in self.modifiers


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Func:
    name: str
    arg: "Node"


@dataclass(frozen=True)
class BinOp:
    op: str
    left: "Node"
    right: "Node"


Node = Union[Num, Metric, Func, BinOp]


def metrics_of(node: Node) -> list[Metric]:
    if isinstance(node, Metric):
        return [node]
    if isinstance(node, Func):
        return metrics_of(node.arg)
    if isinstance(node, BinOp):
        return metrics_of(node.left) + metrics_of(node.right)
    return []


class _Parser:
    def __init__(self, text: str, prose: bool):
        self.s = text
        self.i = 0
        self.prose = prose  # docs: aggregator optional, `{...}`, `<placeholder>` values, `name.*`

    def fail(self, what: str) -> QueryError:
        return QueryError(f"{what} at {self.i} in {self.s!r}: {self.s[self.i:self.i + 30]!r}")

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def peek(self, lit: str) -> bool:
        self.ws()
        return self.s.startswith(lit, self.i)

    def eat(self, lit: str) -> None:
        if not self.peek(lit):
            raise self.fail(f"expected {lit!r}")
        self.i += len(lit)

    def parse(self) -> Node:
        node = self.expr()
        self.ws()
        if self.i != len(self.s):
            raise self.fail("unexpected text")
        return node

    def expr(self) -> Node:
        node = self.term()
        while self.peek("+") or self.peek("-"):
            op = self.s[self.i]
            self.i += 1
            node = BinOp(op, node, self.term())
        return node

    def term(self) -> Node:
        node = self.factor()
        while self.peek("*") or self.peek("/"):
            op = self.s[self.i]
            self.i += 1
            node = BinOp(op, node, self.factor())
        return node

    def factor(self) -> Node:
        self.ws()
        m = re.compile(r"-?\d+(?:\.\d+)?(?![\w.:{])").match(self.s, self.i)
        if m:
            self.i = m.end()
            return Num(float(m.group()))
        if self.peek("("):
            self.i += 1
            node = self.expr()
            self.eat(")")
            return node
        m = re.compile(r"([a-z_]+)\(").match(self.s, self.i)
        if m:
            if m.group(1) not in FUNCTIONS:
                raise self.fail(f"unknown function {m.group(1)!r}")
            self.i = m.end()
            node = self.expr()
            self.eat(")")
            return Func(m.group(1), node)
        return self.metric()

    def metric(self) -> Metric:
        self.ws()
        aggregator = None
        m = re.compile(r"([a-z0-9.]+):(?=[A-Za-z])").match(self.s, self.i)
        if m and (m.group(1) in AGGREGATORS or PERCENTILE.match(m.group(1))):
            aggregator = m.group(1)
            self.i = m.end()
        elif not self.prose:
            raise self.fail("expected a space aggregator (sum:, avg:, max:, min:, count:, pNN:)")
        m = METRIC_NAME.match(self.s, self.i)
        if not m:
            raise self.fail("expected a metric name")
        name = m.group()
        self.i = m.end()
        if self.prose and self.s.startswith(".*", self.i):
            self.i += 2
            return Metric(name, aggregator, (), (), (), family=True)
        if self.prose and not self.peek("{"):
            return Metric(name, aggregator, (), (), ())
        self.eat("{")
        end = self.s.find("}", self.i)
        if end < 0:
            raise self.fail("unclosed {")
        filters = tuple(self.filter(f.strip()) for f in self.s[self.i:end].split(","))
        self.i = end + 1
        by: tuple[str, ...] = ()
        if re.compile(r"\s+by\s*\{").match(self.s, self.i):
            self.i = self.s.index("{", self.i) + 1
            end = self.s.find("}", self.i)
            if end < 0:
                raise self.fail("unclosed by {")
            by = tuple(k.strip() for k in self.s[self.i:end].split(","))
            if not all(re.fullmatch(r"[a-z][\w.]*", k) for k in by):
                raise self.fail(f"bad group-by keys {by}")
            self.i = end + 1
        modifiers = []
        while True:
            m = MODIFIERS.match(self.s, self.i)
            if not m:
                break
            modifiers.append(m.group().lstrip(".").split("(")[0])
            self.i = m.end()
        if self.s.startswith(".", self.i):
            raise self.fail("unknown modifier")
        return Metric(name, aggregator, filters, by, tuple(modifiers))

    def filter(self, text: str) -> Filter:
        if text == "*":
            return Filter(None, None)
        if self.prose and text in ("...", "…"):
            return Filter(None, None)
        m = re.fullmatch(r"\$([A-Za-z_]\w*)", text)
        if m:
            return Filter(None, None, variable=m.group(1))
        m = re.fullmatch(r"(!?)([a-z][\w.\-/]*):(.+)", text)
        if not m:
            raise self.fail(f"bad filter {text!r}")
        neg, key, value = m.group(1) == "!", m.group(2), m.group(3)
        v = re.fullmatch(r"\$([A-Za-z_]\w*)\.value", value)
        if v:
            return Filter(key, None, neg, variable=v.group(1))
        if self.prose and re.fullmatch(r"<[^>]+>", value):
            return Filter(key, None, neg)
        if not re.fullmatch(r"[\w.\-/*]+", value):
            raise self.fail(f"bad tag value {value!r}")
        return Filter(key, value, neg)


def parse_query(text: str, prose: bool = False) -> Node:
    return _Parser(text, prose).parse()


@dataclass(frozen=True)
class MonitorQuery:
    time_aggregation: str
    window: str
    expr: Node
    op: str
    threshold: float


def parse_monitor(text: str) -> MonitorQuery:
    m = MONITOR.match(text.strip())
    if not m:
        raise QueryError(f"not a metric monitor query (<agg>(last_<n><unit>):<expr> <op> <number>): {text!r}")
    expr = parse_query(m.group("expr"))
    return MonitorQuery(m.group("tagg"), m.group("window"), expr, m.group("op"), float(m.group("threshold")))


# --- where the queries are ---------------------------------------------------------------------

@dataclass
class Located:
    where: str
    text: str
    node: Node
    variables: dict[str, str] = field(default_factory=dict)  # template variable -> tag key


def load_dashboard(path: Path = DATADOG_DIR / "dashboard.json", span_name: str | None = None) -> dict[str, Any]:
    """The dashboard; with `span_name`, its trace metrics renamed as deploy/datadog/terraform does."""
    text = path.read_text()
    if span_name is not None:
        text = text.replace("trace.traefik.request", f"trace.{span_name}")
    return json.loads(text)


def widgets(items: list[dict[str, Any]], where: str = "") -> Iterable[tuple[str, dict[str, Any]]]:
    for w in items:
        d = w["definition"]
        here = f"{where}/{d.get('title') or d['type']}"
        yield here, d
        if d["type"] == "group":
            yield from widgets(d["widgets"], here)


def dashboard_queries(dash: dict[str, Any]) -> list[Located]:
    """Every metrics query of every widget request. Each request's formulas may only name its
    queries (checked here: a formula naming a missing query is an error)."""
    variables = {v["name"]: v["prefix"] for v in dash.get("template_variables", [])}
    out = []
    for where, d in widgets(dash["widgets"]):
        for r in d.get("requests", []):
            names = {q["name"] for q in r.get("queries", [])}
            for f in r.get("formulas", []):
                used = set(re.findall(r"[A-Za-z_]\w*", f["formula"])) - FUNCTIONS
                if not used <= names:
                    raise QueryError(f"{where}: formula {f['formula']!r} names {sorted(used - names)}, "
                                     f"the request has {sorted(names)}")
            for q in r.get("queries", []):
                if q["data_source"] != "metrics":
                    raise QueryError(f"{where}: data source {q['data_source']!r}")
                node = parse_query(q["query"])
                # A scalar widget reduces a percentile query with `percentile`, and only those.
                pct = any(m.percentile is not None for m in metrics_of(node))
                if "aggregator" in q and (q["aggregator"] == "percentile") != pct:
                    raise QueryError(f"{where}: aggregator {q['aggregator']!r} for {q['query']!r}")
                out.append(Located(f"{where} [{q['name']}]", q["query"], node, variables))
    return out


def monitor_files() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((DATADOG_DIR / "monitors").glob("*.json"))}


# Backticked text that reads as a metric query of one of our namespaces: `trace.*`, the relay's
# `traefik_datadog.*`, and Traefik's own metrics when written as a query (with braces).
DOC_QUERY = re.compile(r"^(?:(?:sum|avg|max|min|count|p\d{2}):)?"
                       r"(?:(?:trace|traefik_datadog)\.[\w.*]+(?:\{[^`]*\}.*)?|traefik\.[\w.]+\{[^`]*\}.*)$")


def doc_queries(path: Path) -> list[Located]:
    """The query forms a Markdown file quotes in backticks (placeholders allowed: `{...}`,
    `<host>` values, `name.*` families)."""
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        for text in re.findall(r"`([^`\n]+)`", line):
            if "<" in text.split("{")[0] or not DOC_QUERY.match(text):
                continue
            out.append(Located(f"{path.name}:{n}", text, parse_query(text, prose=True)))
    return out


# --- Terraform (the subset deploy/datadog/terraform uses) --------------------------------------

_TF_TOKEN = re.compile(r'\s+|#[^\n]*|//[^\n]*|(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+(?:\.\d+)?)'
                       r'|(?P<id>[A-Za-z_][\w.-]*)|(?P<p>[={}\[\],()])')


def _tf_tokens(text: str) -> list[tuple[str, str]]:
    out, i = [], 0
    while i < len(text):
        m = _TF_TOKEN.match(text, i)
        if not m:
            raise QueryError(f"terraform: cannot read {text[i:i + 40]!r}")
        i = m.end()
        kind = m.lastgroup
        if kind:
            out.append((kind, m.group(kind)))
    return out


def _tf_string(raw: str, variables: dict[str, Any]) -> str:
    """A quoted string: escapes decoded, then `${var.x}` replaced (`$${` is a literal `${`)."""
    text = json.loads(raw.replace("$${", "\ue000"))

    def interp(m: re.Match[str]) -> str:
        if m.group(1) not in variables:
            raise QueryError(f"terraform: unknown variable {m.group(1)!r}")
        return str(variables[m.group(1)])

    text = re.sub(r"\$\{var\.(\w+)\}", interp, text)
    if "${" in text or "%{" in text:
        raise QueryError(f"terraform: unsupported template in {raw!r}")
    return text.replace("\ue000", "${")


def _tf_body(tokens: list[tuple[str, str]], i: int, variables: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Attributes and nested blocks from after `{` to the matching `}`."""
    out: dict[str, Any] = {}
    while tokens[i] != ("p", "}"):
        kind, name = tokens[i]
        if kind != "id":
            raise QueryError(f"terraform: expected a name, got {name!r}")
        if tokens[i + 1] == ("p", "{"):
            out[name], i = _tf_body(tokens, i + 2, variables)
            continue
        if tokens[i + 1] != ("p", "="):
            raise QueryError(f"terraform: expected = after {name}")
        value, i = _tf_value(tokens, i + 2, variables)
        if name in out:
            raise QueryError(f"terraform: {name} given twice")
        out[name] = value
    return out, i + 1


def _tf_value(tokens: list[tuple[str, str]], i: int, variables: dict[str, Any]) -> tuple[Any, int]:
    kind, text = tokens[i]
    if kind == "str":
        return _tf_string(text, variables), i + 1
    if kind == "num":
        return (float(text) if "." in text else int(text)), i + 1
    if kind == "id" and text in ("true", "false"):
        return text == "true", i + 1
    if kind == "id" and text.startswith("var."):
        return variables[text[4:]], i + 1
    if kind == "id":  # a type name (`string`)
        return text, i + 1
    if (kind, text) == ("p", "["):
        items, i = [], i + 1
        while tokens[i] != ("p", "]"):
            v, i = _tf_value(tokens, i, variables)
            items.append(v)
            if tokens[i] == ("p", ","):
                i += 1
        return items, i + 1
    raise QueryError(f"terraform: unsupported value {text!r}")


def terraform_variables() -> dict[str, Any]:
    tokens = _tf_tokens((DATADOG_DIR / "terraform" / "variables.tf").read_text())
    out, i = {}, 0
    while i < len(tokens):
        assert tokens[i] == ("id", "variable"), tokens[i]
        name = json.loads(tokens[i + 1][1])
        body, i = _tf_body(tokens, i + 3, {})
        out[name] = body["default"]
    return out


def terraform_monitors(**overrides: Any) -> dict[str, dict[str, Any]]:
    """`datadog_monitor` resources of monitors.tf, variables at their defaults (or ``overrides``),
    in the JSON form of deploy/datadog/monitors/*.json, keyed by resource name (`-` for `_`)."""
    variables = {**terraform_variables(), **overrides}
    tokens = _tf_tokens((DATADOG_DIR / "terraform" / "monitors.tf").read_text())
    out, i = {}, 0
    option_keys = ("notify_no_data", "no_data_timeframe", "require_full_window", "include_tags", "new_group_delay")
    while i < len(tokens):
        if tokens[i][1] != "resource" or json.loads(tokens[i + 1][1]) != "datadog_monitor":
            raise QueryError(f"terraform: only datadog_monitor resources expected, got {tokens[i:i + 3]}")
        name = json.loads(tokens[i + 2][1])
        body, i = _tf_body(tokens, i + 4, variables)
        options = {"thresholds": body.pop("monitor_thresholds")}
        options.update({k: body.pop(k) for k in option_keys if k in body})
        body["options"] = options
        out[name.replace("_", "-")] = body
    return out


# --- what was emitted --------------------------------------------------------------------------

# The agent's trace metrics per suffix: their type and the tag keys the agent puts on them
# (Datadog docs, "Trace Metrics": hits/errors carry env, service, version, resource,
# resource_name, http.status_code; the `.by_http_status` ones add http.status_class; the latency
# distribution `trace.<name>` and `.apdex` carry env, service, version, resource, resource_name,
# synthetics). Host tags the agent adds (`host`, ...) are not this project's and not allowed.
BASE_KEYS = {"env", "service", "version", "resource", "resource_name"}
TRACE_SUFFIXES: dict[str, tuple[str, frozenset[str]]] = {
    ".hits.by_http_status": ("count", frozenset(BASE_KEYS | {"http.status_code", "http.status_class"})),
    ".errors.by_http_status": ("count", frozenset(BASE_KEYS | {"http.status_code", "http.status_class"})),
    ".hits": ("count", frozenset(BASE_KEYS | {"http.status_code"})),
    ".errors": ("count", frozenset(BASE_KEYS | {"http.status_code"})),
    ".apdex": ("gauge", frozenset(BASE_KEYS | {"synthetics"})),
    "": ("distribution", frozenset(BASE_KEYS | {"synthetics"})),
}
# DogStatsD histograms (Traefik's `*.duration`) reach Datadog as these metrics.
HISTOGRAM_SUFFIXES = {".avg": "gauge", ".median": "gauge", ".max": "gauge", ".95percentile": "gauge",
                      ".count": "count"}
KINDS = {"c": "count", "g": "gauge", "d": "distribution", "h": "histogram", "ms": "histogram"}

Point = tuple[dict[str, str], list[float]]


def trace_dims(span: dict[str, Any]) -> dict[str, str]:
    """The stats dimensions the agent takes from a span, as trace-metric tags."""
    meta = span.get("meta", {})
    dims = {"service": span["service"], "resource": span["resource"], "resource_name": span["resource"],
            "env": meta.get("env", ""), "version": meta.get("version", ""),
            "synthetics": "true" if meta.get("_dd.origin", "").startswith("synthetics") else "false"}
    code = meta.get("http.status_code")
    if code:
        dims["http.status_code"] = code
        dims["http.status_class"] = f"{code[0]}xx"
    return {k: v for k, v in dims.items() if v != ""}


def counted(span: dict[str, Any], chunk_ids: set[int]) -> bool:
    """The agent computes stats for a span that is top level (no parent in its chunk) or measured;
    our spans claim both: `_top_level: 1` and `_dd.measured: 1`."""
    m = span.get("metrics", {})
    top = span.get("parent_id", 0) == 0 or span["parent_id"] not in chunk_ids
    return top and m.get("_top_level") == 1.0 and m.get("_dd.measured") == 1.0


@dataclass
class Emitted:
    traces: list[list[dict[str, Any]]]  # the chunks the test agent received
    relay_lines: list[Any]      # datadog.Metric from the relay's DogStatsD listener
    traefik_lines: list[Any]    # datadog.Metric from Traefik's

    def __post_init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.uncounted: list[dict[str, Any]] = []
        for chunk in self.traces:
            ids = {s["span_id"] for s in chunk}
            for s in chunk:
                (self.spans if counted(s, ids) else self.uncounted).append(s)

    def trace_metric(self, name: str) -> tuple[str, str, frozenset[str]] | None:
        """(span name, kind, allowed tag keys) of `trace.<span name><suffix>`, if such spans came."""
        names = {s["name"] for s in self.spans}
        for suffix, (kind, keys) in TRACE_SUFFIXES.items():
            if name.endswith(suffix) and name[len("trace."):len(name) - len(suffix)] in names:
                return name[len("trace."):len(name) - len(suffix)], kind, keys
        return None

    def trace_points(self, name: str) -> list[Point]:
        found = self.trace_metric(name)
        assert found is not None
        span_name, kind, _ = found
        suffix = name[len("trace.") + len(span_name):]
        out = []
        for s in self.spans:
            if s["name"] != span_name:
                continue
            dims = trace_dims(s)
            if "errors" in suffix and s.get("error") != 1:
                continue
            if "by_http_status" in suffix and "http.status_code" not in dims:
                continue
            if suffix == ".apdex" and s.get("type") != "web":
                continue
            out.append((dims, [s["duration"] / 1e9] if kind == "distribution" else [1.0]))
        return out

    def statsd(self, source: str) -> list[Any]:
        return self.relay_lines if source == RELAY else self.traefik_lines

    def statsd_metric(self, name: str, source: str) -> tuple[str, list[Point]] | None:
        """(kind, points) of a DogStatsD metric as Datadog stores it."""
        lines = self.statsd(source)
        exact = [m for m in lines if m.name == name]
        if exact:
            kinds = {KINDS[m.kind] for m in exact}
            assert len(kinds) == 1, f"{name} sent as {kinds}"
            return kinds.pop(), [(m.tags, m.values) for m in exact]
        for suffix, kind in HISTOGRAM_SUFFIXES.items():
            base = name[: -len(suffix)]
            hist = [m for m in lines if name.endswith(suffix) and m.name == base and KINDS[m.kind] == "histogram"]
            if hist:
                return kind, [(m.tags, [float(len(m.values))] if suffix == ".count" else m.values) for m in hist]
        return None

    def names(self, source: str) -> set[str]:
        if source == TRACE:
            return {f"trace.{s['name']}{suffix}" for s in self.spans for suffix in TRACE_SUFFIXES}
        return {m.name for m in self.statsd(source)}

    def resolve(self, term: Metric) -> tuple[str, frozenset[str] | None, list[Point]] | str:
        """(kind, allowed tag keys or None for "as observed", points), or why there is none."""
        source = source_of(term.metric)
        if source is None:
            return f"{term.metric}: not a metric of this project (trace.*, traefik_datadog.*, traefik.*)"
        if source == TRACE:
            found = self.trace_metric(term.metric)
            if found is None:
                return (f"{term.metric}: no span named so reached the agent "
                        f"(span names: {sorted({s['name'] for s in self.spans})})")
            return found[1], found[2], self.trace_points(term.metric)
        got = self.statsd_metric(term.metric, source)
        if got is not None and got[0] == "histogram":
            return (f"{term.metric}: a DogStatsD histogram, stored by Datadog as "
                    f"{', '.join(term.metric + s for s in HISTOGRAM_SUFFIXES)}")
        if got is None:
            near = sorted(n for n in self.names(source) if n.rsplit(".", 1)[0] == term.metric.rsplit(".", 1)[0])
            return f"{term.metric}: never sent to DogStatsD by {source} (same family: {near})"
        return got[0], None, got[1]

    def problems(self, term: Metric, variables: dict[str, str]) -> list[str]:
        """Why ``term`` would not answer: empty when it selects data from this capture."""
        if term.family:
            source = source_of(term.metric + ".")
            names = self.names(source) if source else set()
            return [] if any(n.startswith(term.metric + ".") for n in names) else [
                f"{term.metric}.*: no such metric was emitted"]
        got = self.resolve(term)
        if isinstance(got, str):
            return [got]
        kind, allowed, points = got
        out = []
        if term.as_count and kind != "count":
            out.append(f"{term.metric}: .as_count() on a {kind}")
        if term.percentile is not None and kind != "distribution":
            out.append(f"{term.metric}: {term.aggregator} on a {kind} (percentiles need a distribution)")
        keys = set(term.by)
        for f in term.filters:
            if f.variable is not None and f.variable not in variables:
                out.append(f"{term.metric}: template variable ${f.variable} is not defined")
            elif f.key is not None:
                keys.add(f.key)
            elif f.variable is not None:
                keys.add(variables[f.variable])
        observed = set().union(*(p[0].keys() for p in points)) if points else set()
        for k in sorted(keys):
            if allowed is not None and k not in allowed:
                out.append(f"{term.metric}: the agent puts no {k!r} tag on it (it has {sorted(allowed)})")
            elif allowed is None and k not in observed:
                out.append(f"{term.metric}: no line carried a {k!r} tag (tags seen: {sorted(observed)})")
        if not out and not select(points, term):
            out.append(f"{term.metric}: no data matches {[f for f in term.filters if f.literal]} "
                       f"with {list(term.by)} present")
        return out


def select(points: list[Point], term: Metric) -> list[Point]:
    """Points that the term's literal filters keep and that carry every `by` key (template
    variables at their default, `*`)."""
    out = []
    for tags, values in points:
        ok = all(k in tags for k in term.by)
        for f in term.filters:
            if f.literal:
                hit = tags.get(f.key) == f.value
                ok = ok and (hit != f.negated)
        if ok:
            out.append((tags, values))
    return out


Groups = dict[tuple[tuple[str, str], ...], float]


def _aggregate(term: Metric, kind: str, points: list[Point]) -> Groups:
    groups: dict[tuple[tuple[str, str], ...], list[float]] = {}
    for tags, values in points:
        groups.setdefault(tuple((k, tags[k]) for k in term.by), []).extend(values)
    out: Groups = {}
    for g, vals in groups.items():
        p = term.percentile
        if p is not None:
            ordered = sorted(vals)
            out[g] = ordered[max(0, math.ceil(len(ordered) * p / 100) - 1)]
        elif kind == "count" or term.aggregator == "sum":
            out[g] = sum(vals)
        elif term.aggregator == "max":
            out[g] = max(vals)
        elif term.aggregator == "min":
            out[g] = min(vals)
        elif term.aggregator == "count":
            out[g] = float(len(vals))
        else:
            out[g] = sum(vals) / len(vals)
    return out


def evaluate(node: Node, data: Emitted) -> Groups:
    """The query over the whole capture as one time bucket, template variables at `*`."""
    if isinstance(node, Num):
        return {(): node.value}
    if isinstance(node, Func):
        inner = evaluate(node.arg, data)
        return {g: abs(v) for g, v in inner.items()} if node.name == "abs" else inner
    if isinstance(node, Metric):
        got = data.resolve(node)
        if isinstance(got, str):
            raise QueryError(got)
        return _aggregate(node, got[0], select(got[2], node))
    left, right = evaluate(node.left, data), evaluate(node.right, data)
    if list(right) == [()]:
        right = {g: right[()] for g in left}
    elif list(left) == [()]:
        left = {g: left[()] for g in right}
    out: Groups = {}
    for g in left.keys() & right.keys():
        a, b = left[g], right[g]
        if node.op == "/":
            if b != 0:
                out[g] = a / b
        else:
            out[g] = a + b if node.op == "+" else a - b if node.op == "-" else a * b
    return out


def triggered(monitor: MonitorQuery, values: Groups) -> dict[str, float]:
    """The groups (as `key:value,...`, or `*` without grouping) whose value crosses the threshold."""
    ops = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}
    return {",".join(f"{k}:{v}" for k, v in g) or "*": v for g, v in values.items()
            if ops[monitor.op](float(v), monitor.threshold)}
