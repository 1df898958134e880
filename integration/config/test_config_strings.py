"""Values given as strings (as Kubernetes CRD and label providers deliver them) are accepted,
and take effect: records are produced with the configured values."""

from __future__ import annotations

from typing import Any

import pytest

from clients import Sent, record_problems, send
from harness import Route, Traefik

KNUTH_FACTOR = 1_111_111_111_111_111_111
BASE = {"service": "edge", "env": "test", "version": "1.2.3"}

# name -> (config, expected overrides)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "strings": ({**BASE, "sampleRate": "1", "statsdPort": "8125"}, {"sample_rate": 1.0}),
    "half": ({**BASE, "sampleRate": "0.5", "statsdPort": "9125"}, {"sample_rate": 0.5}),
    "zero": ({**BASE, "sampleRate": "0"}, {"sample_rate": 0.0}),
    # Traefik's file provider hands every scalar to the plugin as a string: 2 arrives as "2",
    # true as "true", and a float such as `version: 1.5` as "1.500000" (measured with 3.7.15).
    "numversion": ({"service": "edge", "env": "test", "version": 2}, {"version": "2"}),
    "floatversion": ({"service": "edge", "env": "test", "version": 1.5}, {"version": "1.500000"}),
    "errorstatuses": ({**BASE, "errorStatuses": "400-599"}, {"errors": (400, 599)}),
    "resource": ({**BASE, "resourceFrom": "method path"}, {"resource": "method path"}),
    "lists": ({**BASE, "unbufferedPaths": "/never-a, /never-b", "unbufferedHosts": "Never.Test"}, {}),
}

REQUESTS = [("GET", 200, "a.test"), ("GET", 404, "b.test"), ("POST", 503, "a.test"), ("PUT", 200, "c.test:81")]


@pytest.fixture(scope="module")
def traefik(module_traefik_factory) -> Traefik:
    return module_traefik_factory(
        middlewares={name: cfg for name, (cfg, _) in CASES.items()},
        routes=[Route(f"r-{name}", [name]) for name in CASES],
    )


def knuth_keeps(trace_id_low: int, rate: float) -> bool:
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return float((trace_id_low * KNUTH_FACTOR) % 2**64) <= rate * 18_446_744_073_709_551_616.0


def test_no_config_error(traefik: Traefik) -> None:
    assert traefik.config_errors() == []
    assert "Plugins are disabled" not in traefik.output()


@pytest.mark.parametrize("name", list(CASES))
def test_string_values_accepted(traefik: Traefik, name: str) -> None:
    _, want = CASES[name]
    route = f"r-{name}"
    sent = []
    for i, (method, status, host) in enumerate(REQUESTS):
        req = send(traefik.port(route), Sent(i, method, host, f"/{name}/{i}", status=status))
        assert req.got_status == status
        sent.append(req)
    records = traefik.wait_records([r.path for r in sent])
    mine = [r for r in records if r.host.get("routerName") == f"{route}@file"]
    assert sorted(r.data["RequestPath"] for r in mine) == sorted(r.path for r in sent)

    by = {r.data["RequestPath"]: r for r in mine}
    for req in sent:
        d = by[req.path].data
        status = req.status
        lo, hi = want.get("errors", (500, 599))
        is_error = lo <= status <= hi
        want_fields = {
            "dd.version": want.get("version", "1.2.3"),
            "dd.resource": f"{req.method} {req.path}" if want.get("resource") == "method path" else req.expected_host,
            "dd.error": int(is_error),
        }
        assert {k: d.get(k) for k in want_fields} == want_fields
        if is_error:
            assert d["dd.error_type"] == ("client_error" if status < 500 else "server_error")

        rate = want.get("sample_rate", 1.0)
        assert d.get("dd.sample_rate") == rate
        if "sample_rate" not in want:  # no rule: kept by the default mechanism (log mode has no agent rates)
            assert (d.get("dd.sampling_priority"), d.get("dd.sampling_mechanism")) == (1, 0)
        else:
            keep = knuth_keeps(int(d["dd.trace_id"]), rate)
            assert (d.get("dd.sampling_priority"), d.get("dd.sampling_mechanism")) == ((2 if keep else -1), 3)

        # Everything else as for the default configuration.
        ignore = {"dd.version", "dd.resource", "dd.error", "dd.error_type"}
        problems = [
            p for p in record_problems(by[req.path], req, router=f"{route}@file", entrypoint=route, middleware=f"{name}@file",
                                       version=want.get("version", "1.2.3"))
            if p.split("=")[0].split(" ")[0] not in ignore
        ]
        assert problems == []
