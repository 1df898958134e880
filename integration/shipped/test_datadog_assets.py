"""deploy/datadog/ imports as it is.

- The dashboard and every monitor deserialize into Datadog's own API models (the official
  `datadog-api-client`, read strictly: a key the model does not have, a value outside an enum, a
  wrong type or a widget that matches no widget schema is a failure).
- Every query parses (dd_queries' grammar: an unknown function, modifier or aggregator fails),
  and every formula names only queries of its own request.
- Each monitor's critical threshold is the number in its query, and its warning threshold lies on
  the quiet side of it (Datadog refuses the first mismatch; the second never warns).
- The Terraform resources are the JSON monitors: same names, queries, messages, tags, priority,
  thresholds and options once the variables take their defaults; the Terraform dashboard is
  dashboard.json with `trace.traefik.request` renamed after `span_name`.

That the queries find data is test_datadog_queries.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

from datadog_api_client.configuration import Configuration
from datadog_api_client.model_utils import ModelComposed, ModelNormal, UnparsedObject, validate_and_convert_types
from datadog_api_client.v1.model.dashboard import Dashboard
from datadog_api_client.v1.model.monitor import Monitor

import dd_queries as q

FILES = [
    "dashboard.json",
    "monitors/agent-rejecting-payloads.json",
    "monitors/error-rate-per-host.json",
    "monitors/p99-latency-per-host.json",
    "monitors/plugin-recovered-calls.json",
    "monitors/relay-dropping-records.json",
    "monitors/relay-not-reporting.json",
    "monitors/telemetry-silent-while-traefik-serves.json",
    "terraform/dashboard.tf",
    "terraform/monitors.tf",
    "terraform/variables.tf",
    "terraform/versions.tf",
]


def model_problems(x: Any, path: str = "$") -> list[str]:
    """What Datadog's model could not take: unparsed parts, keys it does not know."""
    out = []
    if isinstance(x, UnparsedObject) or (getattr(x, "_unparsed", False) and not isinstance(x, ModelComposed)):
        out.append(f"{path}: does not fit the model")
    if isinstance(x, ModelComposed):
        inst = x.get_oneof_instance()
        if inst is None or isinstance(inst, UnparsedObject):
            out.append(f"{path}: matches none of {[c.__name__ for c in x._composed_schemas.get('oneOf', [])]}")
        else:
            out += model_problems(inst, path)
    elif isinstance(x, ModelNormal):
        for k, v in x._data_store.items():
            if k not in x.attribute_map:
                out.append(f"{path}.{k}: unknown key")
            out += model_problems(v, f"{path}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            out += model_problems(v, f"{path}[{i}]")
    return out


def as_model(data: dict[str, Any], cls: type) -> Any:
    return validate_and_convert_types(data, (cls,), ["body"], True, True, Configuration())


def test_the_folder_holds_these_files() -> None:
    found = sorted(p.relative_to(q.DATADOG_DIR).as_posix() for p in q.DATADOG_DIR.rglob("*") if p.is_file())
    assert found == FILES


def test_dashboard_is_a_datadog_dashboard() -> None:
    dash = q.load_dashboard()
    assert model_problems(as_model(dash, Dashboard)) == []
    assert dash["layout_type"] == "ordered" and dash["template_variables"] == [
        {"name": "env", "prefix": "env", "available_values": [], "defaults": ["*"]},
        {"name": "service", "prefix": "service", "available_values": [], "defaults": ["*"]},
        {"name": "host", "prefix": "resource_name", "available_values": [], "defaults": ["*"]},
    ]
    # The model check can fail (or it proves nothing).
    broken = json.loads(json.dumps(dash))
    broken["widgets"][0]["definition"]["widgets"][1]["definition"]["requests"][0]["formulaz"] = []
    assert model_problems(as_model(broken, Dashboard)) != []


def test_monitors_are_datadog_monitors() -> None:
    monitors = q.monitor_files()
    assert len(monitors) == 7
    for name, m in monitors.items():
        assert model_problems(as_model(m, Monitor)) == [], name
        assert m["type"] == "query alert", name
    broken = {**monitors["error-rate-per-host"], "options": {"thresholds": {"critical": 0.05}, "notify_nodata": True}}
    assert model_problems(as_model(broken, Monitor)) == ["$.options.notify_nodata: unknown key"]


def test_every_query_parses_and_every_formula_names_its_queries() -> None:
    queries = q.dashboard_queries(q.load_dashboard())
    assert len(queries) == 47
    for name, m in q.monitor_files().items():
        q.parse_monitor(m["query"])
    # The grammar rejects what Datadog would not run.
    for bad in ("sum:trace.traefik.request.hits{*}.as_cuont()", "trace.traefik.request.hits{*}",
                "sum:trace.traefik.request.hits{env:prod} by {resource_name", "defualt_zero(sum:a.b{*})"):
        try:
            q.parse_query(bad)
        except q.QueryError:
            continue
        raise AssertionError(f"parsed {bad!r}")


def test_thresholds_agree_with_the_queries() -> None:
    for name, m in q.monitor_files().items():
        mq = q.parse_monitor(m["query"])
        t = m["options"]["thresholds"]
        assert float(t["critical"]) == mq.threshold, name
        if "warning" in t:
            quiet = float(t["warning"]) < mq.threshold if mq.op.startswith(">") else float(t["warning"]) > mq.threshold
            assert quiet, (name, t)
        if m["options"]["notify_no_data"]:
            window = int(re.fullmatch(r"last_(\d+)m", mq.window).group(1))  # type: ignore[union-attr]
            assert m["options"]["no_data_timeframe"] >= 2 * window, name


def test_terraform_monitors_are_the_json_monitors() -> None:
    assert q.terraform_variables() == {"env": "prod", "service": "edge", "span_name": "traefik.request", "notify": ""}
    assert q.terraform_monitors() == q.monitor_files()
    # With ingress-nginx's names only the span name and the service change in the queries.
    nginx = q.terraform_monitors(span_name="nginx.request", service="nginx")
    for name, m in q.monitor_files().items():
        assert nginx[name]["query"] == m["query"].replace("trace.traefik.request", "trace.nginx.request").replace(
            "service:edge", "service:nginx"), name
    notified = q.terraform_monitors(notify="\n@slack-edge")
    assert all(m["message"].endswith("\n@slack-edge") for m in notified.values())


def test_terraform_dashboard_is_the_json_dashboard() -> None:
    tf = (q.DATADOG_DIR / "terraform" / "dashboard.tf").read_text()
    assert re.findall(r'resource "(\w+)"', tf) == ["datadog_dashboard_json"]
    (expr,) = re.findall(r"dashboard = (.+)", tf)
    assert expr == ('replace(file("${path.module}/../dashboard.json"), "trace.traefik.request", '
                    '"trace.${var.span_name}")')
