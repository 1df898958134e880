"""End to end through Traefik's real Kubernetes CRD provider: a stand-in for the Kubernetes API
(kubeapi.py) serves deploy/k8s/middleware.yaml and deploy/k8s/ingressroute.yaml as they are, plus a
Service and an EndpointSlice for the local test backend. Traefik (default log level, plain HTTP to
the API, no token) loads the plugin with the mount from deploy/k8s/traefik-values.yaml; the relay
reads the FIFO. Requests through the IngressRoute become exactly one span each, with the
Middleware's configuration; a bad value in the Middleware gives the plugin's one clear error line
and traffic passes untouched.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from datadog import StatsdListener, TestAgent
from deployed import deployed_relay
from harness import REPO_DIR, READY_PREFIX, Backend, Route, Traefik
from kubeapi import KubeAPI
from pipeline import FIFO_NAME, Pipeline

K8S = REPO_DIR / "deploy" / "k8s"
HOST = "shop.example.com"
STATUSES = [200, 201, 404, 500, 503, 301]
N = 60


def manifest(name: str) -> dict[str, Any]:
    (doc,) = [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return doc


def mount_flag() -> str:
    (values,) = [d for d in yaml.safe_load_all((K8S / "traefik-values.yaml").read_text()) if d]
    flag = "--experimental.localPlugins.datadog.settings.mounts="
    (arg,) = [a for a in values["additionalArguments"] if a.startswith(flag)]
    return arg[len(flag):]


def backend_objects(port: int) -> list[dict[str, Any]]:
    """The Service the IngressRoute names (port 80) and its EndpointSlice (the test backend)."""
    return [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "shop", "namespace": "default"},
         "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10",
                  "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": port}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "shop-1", "namespace": "default",
                      "labels": {"kubernetes.io/service-name": "shop"}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": ["127.0.0.1"],
                        "conditions": {"ready": True, "serving": True, "terminating": False}}],
         "ports": [{"name": "http", "port": port, "protocol": "TCP"}]},
    ]


class CrdTraefik(Traefik):
    """Traefik with only the kubernetescrd provider, pointed at the stand-in."""

    def __init__(self, workdir: Path, backend: Backend, api: KubeAPI, guest_mount: str):
        super().__init__(workdir, backend, routes=[Route("web")], middlewares={"datadog": {}},
                         mounts=[guest_mount], log_level=None)
        self.api = api

    def static_config(self) -> dict[str, Any]:
        cfg = super().static_config()
        cfg["providers"] = {"kubernetesCRD": {"endpoint": self.api.url}}
        return cfg

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        n = 0
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"traefik exited with {self.proc.returncode}; output:\n{self.output_tail()}")
            n += 1
            try:
                r = requests.get(f"{self.url('web')}{READY_PREFIX}{n}", headers={"Host": HOST}, timeout=2)
                if self._is_ready(r):
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the IngressRoute never reached the backend; API requests {self.api.requests[:30]}; "
                            f"output:\n{self.output_tail()}")
            time.sleep(0.1)


def start(tmp: Path, backend: Backend, middleware: dict[str, Any]) -> tuple[Pipeline, KubeAPI]:
    agent = TestAgent(tmp / "agent").start()
    statsd = StatsdListener()
    host_dir, guest_dir = mount_flag().split(":")
    run = tmp / "run"
    run.mkdir()
    relay = deployed_relay(tmp, agent, statsd).start()
    deadline = time.monotonic() + 10
    while not (run / FIFO_NAME).exists():
        assert time.monotonic() < deadline, relay.log()
        time.sleep(0.05)
    api = KubeAPI([middleware, manifest("ingressroute.yaml"), *backend_objects(backend.port)]).start()
    traefik = CrdTraefik(tmp / "traefik", backend, api, f"{run}:{guest_dir}")
    try:
        traefik.start(timeout=60)
    except BaseException:
        traefik.stop()
        relay.stop()
        agent.stop()
        api.stop()
        raise
    return Pipeline(agent, statsd, relay, traefik, run / FIFO_NAME), api


def stop(p: Pipeline, api: KubeAPI) -> None:
    p.traefik.stop()
    p.relay.stop()
    p.agent.stop()
    p.statsd.close()
    api.stop()


def send_all(p: Pipeline) -> dict[str, int]:
    sent = {}
    with requests.Session() as s:
        for n in range(N):
            status = STATUSES[n % len(STATUSES)]
            path = f"/load/{n}"
            r = s.get(f"{p.traefik.url('web')}{path}?status={status}", headers={"Host": HOST},
                      allow_redirects=False, timeout=10)
            assert (r.status_code, r.headers.get("X-Backend")) == (status, "1"), (path, r.status_code, r.text[:200])
            sent[path] = status
    return sent


def test_ingressroute_requests_become_exact_spans(tmp_path, backend) -> None:
    mw = manifest("middleware.yaml")
    conf = mw["spec"]["plugin"]["datadog"]
    p, api = start(tmp_path, backend, mw)
    try:
        sent = send_all(p)
        spans = p.wait_spans(set(sent), timeout=30)
        time.sleep(1.5)  # a duplicate would show by now
        spans = p.spans("/load/")
        assert sorted(spans) == sorted(sent)
        assert {k: len(v) for k, v in spans.items() if len(v) != 1} == {}
        for path, (s,) in spans.items():
            meta = s["meta"]
            assert (s["service"], s["resource"], meta["env"], meta["version"], meta["http.status_code"]) == (
                conf["service"], HOST, conf["env"], conf["version"], str(sent[path])), s
            assert s["error"] == (1 if sent[path] >= 500 else 0), s
        assert p.traefik.records(include_ready=True) == []
        assert p.traefik.config_errors() == []
        # Watch-list requests (initial events, then the bookmark), as Traefik 3.7 makes them.
        watched = {r.split("?", 1)[0] for r in api.requests if "watch=true" in r and "sendInitialEvents=true" in r}
        assert {"/apis/traefik.io/v1alpha1/middlewares", "/apis/traefik.io/v1alpha1/ingressroutes",
                "/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices"} <= watched, api.requests
    finally:
        stop(p, api)


def test_bad_middleware_value_gives_one_clear_error_line(tmp_path, backend) -> None:
    mw = copy.deepcopy(manifest("middleware.yaml"))
    mw["spec"]["plugin"]["datadog"]["sampleRate"] = "2"
    p, api = start(tmp_path, backend, mw)
    try:
        sent = send_all(p)
        time.sleep(2.5)  # past the relay's 1 s flush: nothing may arrive
        assert p.spans("/load/") == {}
        assert p.traefik.records(include_ready=True) == []
        errors = p.traefik.config_errors()
        assert errors, p.traefik.output_tail()
        texts = {e.text for e in errors}
        assert texts == {'traefik-datadog: invalid config: key "sampleRate": 2 is outside 0..1; '
                         'this middleware passes traffic through untouched and records nothing'}
        assert {e.host.get("level") for e in errors} == {"error"}
        assert {e.host.get("middlewareName") for e in errors} == {"default-datadog@kubernetescrd"}
        assert len(sent) == N
    finally:
        stop(p, api)
