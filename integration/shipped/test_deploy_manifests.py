"""Every deployment manifest parses, and every plugin configuration in it passes the plugin's own
validation (the relay's --check-plugin-config runs tdp_core::config on it). Paths must agree:
the FIFO the plugin writes (pipePath, inside the guest mount) is the one the relay reads."""

from __future__ import annotations

import json
import posixpath
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from datadog import RELAY_BIN
from harness import MODULE_NAME, REPO_DIR

DEPLOY = REPO_DIR / "deploy"
PLUGIN = "datadog"


def docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def check(conf: dict[str, Any]) -> str:
    if not RELAY_BIN.is_file():
        pytest.fail(f"relay not built: {RELAY_BIN}")
    r = subprocess.run([str(RELAY_BIN), "--check-plugin-config", json.dumps(conf)], capture_output=True, text=True)
    return r.stdout.strip()


def relay_flags() -> set[str]:
    out = subprocess.run([str(RELAY_BIN), "--help"], capture_output=True, text=True, check=True).stdout
    return {w for w in out.split() if w.startswith("--")}


def test_every_manifest_parses() -> None:
    files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml"))
    assert [f.relative_to(DEPLOY).as_posix() for f in files] == [
        "compose/agent-on-host.yml", "compose/docker-compose.yml", "compose/dynamic.yml", "compose/traefik.yml",
        "k8s/ingressroute.yaml", "k8s/middleware.yaml", "k8s/traefik-values.yaml",
    ]
    for f in files:
        assert docs(f), f"{f} is empty"


def test_validation_rejects_a_bad_config() -> None:
    # The check itself must be able to fail, or the tests below prove nothing.
    assert check({"service": "edge", "sampleRate": -0.5}) == (
        'invalid plugin config: key "sampleRate": -0.5 is outside 0..1')


def test_kubernetes_middleware_and_values_agree() -> None:
    (mw,) = docs(DEPLOY / "k8s/middleware.yaml")
    assert mw["kind"] == "Middleware" and mw["apiVersion"] == "traefik.io/v1alpha1"
    conf = mw["spec"]["plugin"][PLUGIN]
    assert check(conf) == "plugin config ok"

    (route,) = docs(DEPLOY / "k8s/ingressroute.yaml")
    assert route["kind"] == "IngressRoute"
    assert [m["name"] for r in route["spec"]["routes"] for m in r["middlewares"]] == [mw["metadata"]["name"]]

    (values,) = docs(DEPLOY / "k8s/traefik-values.yaml")
    args = dict(a.removeprefix("--").split("=", 1) for a in values["additionalArguments"])
    assert args[f"experimental.localPlugins.{PLUGIN}.moduleName"] == MODULE_NAME
    host_dir, guest_dir = args[f"experimental.localPlugins.{PLUGIN}.settings.mounts"].split(":")
    assert posixpath.dirname(conf["pipePath"]) == guest_dir

    relay = native_sidecar(values)
    fifo = relay["args"][relay["args"].index("--pipe") + 1]
    assert fifo == posixpath.join(host_dir, posixpath.basename(conf["pipePath"]))
    assert {a for a in relay["args"] if a.startswith("--")} <= relay_flags()
    # The FIFO's directory is the shared emptyDir in both containers.
    mounts = {m["mountPath"]: m["name"] for m in values["additionalVolumeMounts"]}
    relay_mounts = {m["mountPath"]: m["name"] for m in relay["volumeMounts"]}
    assert mounts[host_dir] == relay_mounts[host_dir]
    # Traefik resolves plugins-local/ against its working directory (/ in the image).
    assert mounts["/plugins-local"] == "plugins-local"


def test_relay_probes_are_liveness_only() -> None:
    """The relay's /live is its liveness and startup probe on the port --health-listen opens; its
    /ready is no readinessProbe: a sidecar's readiness is the pod's, and the agent being down must not
    take Traefik out of service."""
    (values,) = docs(DEPLOY / "k8s/traefik-values.yaml")
    relay = native_sidecar(values)
    listen = relay["args"][relay["args"].index("--health-listen") + 1]
    port = int(listen.rsplit(":", 1)[1])
    (named,) = [p for p in relay["ports"] if p["name"] == "relay-health"]
    assert named["containerPort"] == port
    for probe in ("livenessProbe", "startupProbe"):
        assert relay[probe]["httpGet"] == {"path": "/live", "port": "relay-health"}, probe
    assert "readinessProbe" not in relay
    assert relay["args"][relay["args"].index("--log-format") + 1] == "json"


def native_sidecar(values: dict[str, Any]) -> dict[str, Any]:
    """The relay: an init container with restartPolicy Always (starts before Traefik, stops after)."""
    assert "additionalContainers" not in values["deployment"], "the relay must be a native sidecar"
    (relay,) = [c for c in values["deployment"]["initContainers"] if c.get("restartPolicy") == "Always"]
    assert relay["name"] == "datadog-relay"
    return relay


RESTRICTED = {
    "runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
}
# registry host / path : version; never latest.
IMAGE_RE = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+(:\d+)?/[a-z0-9._/-]+:[A-Za-z0-9._-]+$")


def test_kubernetes_pod_runs_restricted_with_explicit_images() -> None:
    (values,) = docs(DEPLOY / "k8s/traefik-values.yaml")
    # Traefik's own container, through the chart's keys.
    assert values["securityContext"] == RESTRICTED
    pod = values["podSecurityContext"]
    assert (pod["runAsNonRoot"], pod["runAsUser"], pod["seccompProfile"]) == (True, 65532, {"type": "RuntimeDefault"})
    image = values["image"]
    assert IMAGE_RE.match(f"{image['registry']}/{image['repository']}:{image['tag']}"), image
    assert image["tag"] == "v3.7.15"
    inits = values["deployment"]["initContainers"]
    assert [c["name"] for c in inits] == ["datadog-plugin", "datadog-relay"]
    for c in inits:
        assert c["securityContext"] == RESTRICTED, c["name"]
        assert IMAGE_RE.match(c["image"]) and not c["image"].endswith(":latest"), c["image"]
    native_sidecar(values)
    # The chart writes only moduleName for experimental.localPlugins: settings.mounts stays a flag.
    assert "experimental" not in values
    text = (DEPLOY / "k8s/traefik-values.yaml").read_text()
    assert "experimental.localPlugins" in text and "settings.mounts" in text
    assert any(a.startswith("--experimental.localPlugins.datadog.settings.mounts=") for a in values["additionalArguments"])


def test_cross_namespace_reference_is_the_one_traefik_resolves() -> None:
    text = (DEPLOY / "k8s/ingressroute.yaml").read_text()
    (route,) = docs(DEPLOY / "k8s/ingressroute.yaml")
    (ref,) = [m for r in route["spec"]["routes"] for m in r["middlewares"]]
    (mw,) = docs(DEPLOY / "k8s/middleware.yaml")
    assert ref == {"name": mw["metadata"]["name"], "namespace": mw["metadata"]["namespace"]}
    assert "allowCrossNamespace=true" in text
    assert "use datadog@kubernetescrd" not in text


def test_compose_and_dockerfile_images_are_explicit_and_unprivileged() -> None:
    (compose,) = docs(DEPLOY / "compose/docker-compose.yml")
    for name, svc in compose["services"].items():
        assert IMAGE_RE.match(svc["image"]), (name, svc["image"])
    for name in ("traefik", "plugin", "relay", "whoami"):
        svc = compose["services"][name]
        assert (svc["user"], svc["read_only"], svc["cap_drop"]) == ("65532:65532", True, ["ALL"]), name
    # The upstream images (not the Dockerfile's own stages): pinned.
    stages = re.findall(r"^FROM (?:--platform=\S+ )?(\S+)(?: AS (\S+))?$", (DEPLOY / "Dockerfile").read_text(), re.M)
    froms = [image for image, _ in stages if image not in {name for _, name in stages}]
    assert len(froms) == 3 and all(IMAGE_RE.match(f) for f in froms), froms
    assert (DEPLOY / "Dockerfile").read_text().count("USER 65532:65532") == 2


def test_compose_files_agree() -> None:
    (static,) = docs(DEPLOY / "compose/traefik.yml")
    plugin = static["experimental"]["localPlugins"][PLUGIN]
    assert plugin["moduleName"] == MODULE_NAME
    host_dir, guest_dir = plugin["settings"]["mounts"][0].split(":")

    (dynamic,) = docs(DEPLOY / "compose/dynamic.yml")
    confs = [m["plugin"][PLUGIN] for m in dynamic["http"]["middlewares"].values()]
    assert confs, "no plugin middleware in compose/dynamic.yml"
    for conf in confs:
        assert check(conf) == "plugin config ok"
        assert posixpath.dirname(conf["pipePath"]) == guest_dir

    (compose,) = docs(DEPLOY / "compose/docker-compose.yml")
    relay = compose["services"]["relay"]
    fifo = relay["command"][relay["command"].index("--pipe") + 1]
    assert fifo == posixpath.join(host_dir, posixpath.basename(confs[0]["pipePath"]))
    assert {a for a in relay["command"] if a.startswith("--")} <= relay_flags()
    traefik_vols = {v.split(":")[1]: v.split(":")[0] for v in compose["services"]["traefik"]["volumes"]}
    relay_vols = {v.split(":")[1]: v.split(":")[0] for v in relay["volumes"]}
    assert traefik_vols[host_dir] == relay_vols[host_dir]
