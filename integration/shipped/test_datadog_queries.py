"""Every Datadog query this project hands out finds data that this project emits.

Real traffic goes through the real Traefik, configured as deployed: the plugin with the Middleware
of deploy/k8s/middleware.yaml on the entry point `web` (so every router there carries it, as
docs/migration.md recommends), the ingress-nginx naming Middleware of docs/migration.md
(`spanName: nginx.request`, `service: nginx`) on the router `nginx`, a `spanName: nginx.handle`
one on the router `handle`, pipe mode into the relay, the relay sending to the official Datadog
APM test agent and to a DogStatsD listener, and Traefik's own DogStatsD metrics (the
`--metrics.datadog.*` flags of deploy/k8s/traefik-values.yaml) to a second listener.

The queries: each metrics query of deploy/datadog/dashboard.json (also renamed to
`trace.nginx.request` as the Terraform module does for `span_name = "nginx.request"`), each
monitor of deploy/datadog/monitors/ and of the Terraform module (with its default variables and
with the nginx names), and each query form quoted in README.md and docs/migration.md. They are
parsed, not listed (integration/dd_queries.py), so a typo in any of them fails here.

What is checked, per metric term of a query:
- `trace.<span>.<suffix>`: the Datadog agent computes these from spans; the test agent does not.
  So: spans named `<span>` reached the agent, every span the agent got is one it computes stats
  for (top level in its chunk and marked `_top_level: 1` and `_dd.measured: 1`), names and
  services are already as the agent normalises them, each tag key used (filter, `by`, template
  variable) is one the agent puts on that metric (`TRACE_SUFFIXES`), and the literal filters
  select spans whose stats dimensions (service, resource, meta env/version/http.status_code,
  `_dd.origin`) match.
- `traefik_datadog.*` (the relay) and `traefik.*` (Traefik): a DogStatsD line of that name came,
  its type allows the aggregation (`.as_count()` a count, `pNN:` a distribution), each tag key
  used is on its lines, and the literal filters select lines.
- The values: hits and errors per host exactly as sent, and each monitor evaluated over the run
  fires exactly where the traffic says (the error-rate monitor on the one host with 1 error in 5,
  the p99 monitor on the host whose backend waited 1.1 s, the telemetry-path monitors nowhere,
  with plugin records = Traefik's routed requests, a ratio of exactly 1).
"""

from __future__ import annotations

import re
import time
from typing import Any, Iterator

import pytest
import requests
import yaml

import dd_queries as q
from datadog import Relay, StatsdListener, TestAgent
from harness import REPO_DIR, Backend, Route, Traefik
from pipeline import FIFO_NAME, GUEST_DIR, relay_args

K8S = REPO_DIR / "deploy" / "k8s"
MIGRATION = REPO_DIR / "docs" / "migration.md"
SLOW_MS = 1100

# (router, Host, backend query, extra headers, how many): the run's requests.
SYNTHETICS = {"x-datadog-trace-id": "4242", "x-datadog-parent-id": "0", "x-datadog-origin": "synthetics",
              "x-datadog-sampling-priority": "1"}
PLAN: list[tuple[str, str, str, dict[str, str], int]] = [
    ("web", "shop.example.com", "status=200", {}, 3),
    ("web", "shop.example.com", "status=404", {}, 1),
    ("web", "shop.example.com", "status=503", {}, 1),
    ("web", "api.example.com", "status=200", {}, 4),
    ("web", "api.example.com", "status=200", SYNTHETICS, 1),
    ("web", "slow.example.com", f"delay_ms={SLOW_MS}", {}, 1),
    ("nginx", "shop.example.com", "status=200", {}, 2),
    ("nginx", "shop.example.com", "status=503", {}, 1),
    ("handle", "shop.example.com", "status=200", {}, 1),
]


def deployed_middleware() -> dict[str, Any]:
    (mw,) = [d for d in yaml.safe_load_all((K8S / "middleware.yaml").read_text()) if d]
    return dict(mw["spec"]["plugin"]["datadog"])


def migration_nginx_middleware() -> dict[str, Any]:
    """The Middleware docs/migration.md gives for ingress-nginx's names."""
    blocks = re.findall(r"```yaml\n(.*?)```", MIGRATION.read_text(), re.S)
    found = [d for b in blocks for d in yaml.safe_load_all(b) if isinstance(d, dict) and d.get("kind") == "Middleware"
             and d["spec"]["plugin"]["datadog"].get("spanName") == "nginx.request"]
    assert len(found) == 1, "docs/migration.md: one Middleware with spanName nginx.request"
    return dict(found[0]["spec"]["plugin"]["datadog"])


def traefik_metrics_flags() -> dict[str, Any]:
    """`--metrics.datadog.<key>=<value>` of deploy/k8s/traefik-values.yaml."""
    (values,) = [d for d in yaml.safe_load_all((K8S / "traefik-values.yaml").read_text()) if d]
    flags = {}
    for a in values["additionalArguments"]:
        m = re.fullmatch(r"--metrics\.datadog\.(\w+)=(.*)", a)
        if m:
            flags[m.group(1)] = {"true": True, "false": False}.get(m.group(2), m.group(2))
    return flags


class MeteredTraefik(Traefik):
    """Traefik with its DogStatsD metrics on (the values' flags, sent to ``statsd_port``, pushed
    every second) and the middleware ``dd`` on the entry point ``web``."""

    def __init__(self, *args: Any, statsd_port: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.statsd_port = statsd_port

    def static_config(self) -> dict[str, Any]:
        cfg = super().static_config()
        cfg["metrics"] = {"datadog": {**traefik_metrics_flags(), "address": f"127.0.0.1:{self.statsd_port}",
                                      "pushInterval": "1s"}}
        cfg["entryPoints"]["web"]["http"] = {"middlewares": ["dd@file"]}
        return cfg


def wait_for(predicate: Any, what: str, timeout: float = 60.0) -> None:
    """Polls until ``predicate()``; the deadline only bounds a broken run."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def path_of(span: dict[str, Any]) -> str:
    url = span.get("meta", {}).get("http.url", "")
    return "/" + url.split("://", 1)[-1].split("/", 1)[-1]


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory, backend: Backend) -> Iterator[q.Emitted]:
    tmp = tmp_path_factory.mktemp("datadog-queries")
    agent = TestAgent(tmp / "agent").start()
    relay_statsd, traefik_statsd = StatsdListener(), StatsdListener()
    run = tmp / "run"
    run.mkdir()
    relay = Relay(tmp / "relay", relay_args(agent, relay_statsd, "--pipe", str(run / FIFO_NAME)))
    deployed = deployed_middleware()
    middlewares = {"dd": deployed, "nginx": migration_nginx_middleware(),
                   "handle": {**deployed, "spanName": "nginx.handle", "service": "nginx"}}
    traefik = MeteredTraefik(tmp / "traefik", backend, routes=[Route("web"), Route("nginx", ["nginx"]),
                                                               Route("handle", ["handle"])],
                             middlewares=middlewares, mounts=[f"{run}:{GUEST_DIR}"],
                             statsd_port=traefik_statsd.port)
    try:
        relay.start()
        wait_for(lambda: (run / FIFO_NAME).exists(), "the relay's FIFO")
        traefik.start()
        want = set()
        for route, host, query, headers, count in PLAN:
            for _ in range(count):
                path = f"/q/{len(want)}"
                r = requests.get(f"{traefik.url(route)}{path}?{query}", headers={"Host": host, **headers}, timeout=30)
                expected = int(query.split("=")[1]) if query.startswith("status=") else 200
                assert r.status_code == expected, (route, host, query, r.status_code)
                want.add(path)
        wait_for(lambda: want <= {path_of(s) for s in agent.spans()}, "every request's span")
        assert relay.stop() == 0  # SIGTERM: the last request metrics and relay counters go out

        def total(lines: list[Any], name: str) -> float:
            return sum(m.values[0] for m in list(lines) if m.name == name)

        # Traefik pushes its counters every second: wait until it counted every routed request,
        # then one push more (a request counted twice would show).
        received = total(relay_statsd.metrics, "traefik_datadog.relay.records_received")
        wait_for(lambda: total(traefik_statsd.metrics, "traefik.router.request.total") >= received > 0,
                 "Traefik's router counters")
        time.sleep(1.5)
        yield q.Emitted(agent.traces(), list(relay_statsd.metrics), list(traefik_statsd.metrics))
        assert relay_statsd.malformed == [] and traefik_statsd.malformed == []
    finally:
        traefik.stop()
        relay.stop()
        agent.stop()
        relay_statsd.close()
        traefik_statsd.close()


def host_counts(data: q.Emitted, query: str) -> dict[str, float]:
    """A `by {resource_name}` or `by {resource}` query's value per plan host."""
    hosts = {h for _, h, _, _, _ in PLAN}
    return {g[0][1]: v for g, v in q.evaluate(q.parse_query(query), data).items() if g and g[0][1] in hosts}


def test_the_agent_computes_trace_metrics_from_every_span(emitted: q.Emitted) -> None:
    assert emitted.uncounted == []
    for s in emitted.spans:
        assert re.fullmatch(r"[a-z][a-z0-9_.]{0,99}", s["name"]) and s["service"] == s["service"].lower()
        assert s["type"] == "web"
    names = {(s["name"], s["service"]) for s in emitted.spans}
    assert names == {("traefik.request", "edge"), ("nginx.request", "nginx"), ("nginx.handle", "nginx")}
    plan_spans = [s for s in emitted.spans if path_of(s).startswith("/q/")]
    assert len(plan_spans) == sum(n for *_, n in PLAN)
    # Hits and errors per host exactly as sent: what the dashboard's "by host" widgets show.
    edge_hits = "sum:trace.traefik.request.hits{env:prod,service:edge} by {resource_name}.as_count()"
    assert host_counts(emitted, edge_hits) == {"shop.example.com": 5, "api.example.com": 5, "slow.example.com": 1}
    assert host_counts(emitted, "sum:trace.traefik.request.errors{env:prod} by {resource_name}.as_count()") == {
        "shop.example.com": 1}
    assert host_counts(emitted, "sum:trace.nginx.request.hits{service:nginx} by {resource_name}.as_count()") == {
        "shop.example.com": 3}
    assert host_counts(emitted, "sum:trace.nginx.request.errors{service:nginx} by {resource_name}.as_count()") == {
        "shop.example.com": 1}
    assert host_counts(emitted, "sum:traefik_datadog.request.hits{env:prod,service:edge} by {resource}.as_count()") == {
        "shop.example.com": 5, "api.example.com": 5, "slow.example.com": 1}
    assert host_counts(emitted, "sum:traefik_datadog.request.errors{service:nginx} by {resource}.as_count()") == {
        "shop.example.com": 1}
    # `synthetics` is a tag of the latency distribution, not of hits (the agent's tag sets).
    assert q.evaluate(q.parse_query("count:trace.traefik.request{synthetics:true} by {resource_name}"), emitted) == {
        (("resource_name", "api.example.com"),): 1.0}
    hits = q.metrics_of(q.parse_query("sum:trace.traefik.request.hits{synthetics:true}.as_count()"))[0]
    assert emitted.problems(hits, {}) == [
        "trace.traefik.request.hits: the agent puts no 'synthetics' tag on it (it has "
        "['env', 'http.status_code', 'resource', 'resource_name', 'service', 'version'])"]


def unresolved(located: list[q.Located], data: q.Emitted) -> list[str]:
    return [f"{loc.where}: {p}  [{loc.text}]" for loc in located for term in q.metrics_of(loc.node)
            for p in data.problems(term, loc.variables)]


def test_every_dashboard_query_finds_data(emitted: q.Emitted) -> None:
    assert unresolved(q.dashboard_queries(q.load_dashboard()), emitted) == []
    # As the Terraform module renames it for ingress-nginx's span name.
    assert unresolved(q.dashboard_queries(q.load_dashboard(span_name="nginx.request")), emitted) == []
    # The check can fail: a misspelt metric, tag key or tag value finds nothing.
    for bad in ("sum:trace.traefik.request.hit{$env}.as_count()",
                "sum:trace.traefik.request.hits{*} by {host}.as_count()",
                "sum:traefik_datadog.relay.spans_dropped{reason:rejectd}.as_count()",
                "p99:traefik_datadog.request.hits{*}", "sum:traefik.router.request.duration{*}"):
        term = q.metrics_of(q.parse_query(bad))[0]
        assert emitted.problems(term, {"env": "env"}) != [], bad


def monitor_outcome(name: str, monitor: dict[str, Any], data: q.Emitted) -> dict[str, float]:
    mq = q.parse_monitor(monitor["query"])
    problems = [p for term in q.metrics_of(mq.expr) for p in data.problems(term, {})]
    assert problems == [], name
    values = q.evaluate(mq.expr, data)
    assert values, f"{name}: no data"
    return q.triggered(mq, values)


def test_every_monitor_finds_data_and_fires_where_the_traffic_says(emitted: q.Emitted) -> None:
    monitors = q.monitor_files()  # the Terraform module's, too (test_datadog_assets.py)
    quiet = {"relay-dropping-records", "agent-rejecting-payloads", "telemetry-silent-while-traefik-serves",
             "relay-not-reporting", "plugin-recovered-calls"}
    for name, m in monitors.items():
        fired = monitor_outcome(name, m, emitted)
        if name in quiet:
            assert fired == {}, name
        elif name == "error-rate-per-host":
            assert fired == {"resource_name:shop.example.com": 0.2}
        elif name == "p99-latency-per-host":
            # The backend waited SLOW_MS before answering; other hosts' latency is not bounded here.
            assert fired["resource_name:slow.example.com"] >= SLOW_MS / 1000
        else:
            raise AssertionError(f"no expectation for monitor {name}")
    # Plugin records = requests Traefik routed, exactly: the silent-path monitor reads 1.
    silent = q.parse_monitor(monitors["telemetry-silent-while-traefik-serves"]["query"])
    assert q.evaluate(silent.expr, emitted) == {(): 1.0}
    dropped = q.parse_monitor(monitors["relay-dropping-records"]["query"])
    assert q.evaluate(dropped.expr, emitted) == {(): 0.0}


def test_the_terraform_monitors_with_ingress_nginx_names(emitted: q.Emitted) -> None:
    for name, m in q.terraform_monitors(span_name="nginx.request", service="nginx").items():
        fired = monitor_outcome(name, m, emitted)
        if name == "error-rate-per-host":
            assert fired == {"resource_name:shop.example.com": 1 / 3}
        elif name != "p99-latency-per-host":
            assert fired == {}, name


def test_every_query_the_docs_quote_finds_data(emitted: q.Emitted) -> None:
    readme = q.doc_queries(REPO_DIR / "README.md")
    guide = q.doc_queries(MIGRATION)
    # The ingress-nginx forms the README promises keep working with the nginx names.
    texts = {loc.text for loc in readme}
    assert "trace.nginx.request.hits{service:nginx,resource_name:shop.example.com}" in texts
    assert {"trace.nginx.request.errors{...}", "trace.nginx.request{...}"} <= texts
    assert len(guide) >= 10
    assert unresolved(readme + guide, emitted) == []
