"""The images a user pulls, as deploy/Dockerfile builds them (integration/containers.py):

- the plugin image holds plugins-local/ exactly as `make build` lays it out, everything the docs tell
  users to load: plugin.wasm and plugin-net.wasm (also as the traefik-datadog-plugin-net module) and
  the status probe, owned by 65532; every module went through the post-link step (no bulk-memory
  instruction, entry points wrapped: `tdp-postlink check`, as test_no_bulk_memory.py does for
  `make build`), and the probe's files and the manifests are the repository's;
- both carry the OCI labels (version = Cargo.toml's, revision and created = the commit's) and the
  licence, and run as 65532; the relay image's relay answers;
- deploy/compose, deploy/k8s and the Dockerfile's default all name the version in Cargo.toml.
"""

from __future__ import annotations

import json
import re
import subprocess

from containers import PLUGIN_IMAGE, RELAY_IMAGE, UID, VERSION, docker, image_files, images
import postlink
from harness import REPO_DIR

PLUGIN_FILES = {
    "src/traefik-datadog-plugin/.traefik.yml": REPO_DIR / ".traefik.yml",
    "src/traefik-datadog-plugin/plugin.wasm": None,
    "src/traefik-datadog-plugin/plugin-net.wasm": None,
    "src/traefik-datadog-plugin-net/.traefik.yml": REPO_DIR / ".traefik.yml",
    "src/traefik-datadog-plugin-net/plugin.wasm": None,
    "src/github.com/traefik-datadog-plugin/statusprobe/.traefik.yml": REPO_DIR / "probe" / ".traefik.yml",
    "src/github.com/traefik-datadog-plugin/statusprobe/go.mod": REPO_DIR / "probe" / "go.mod",
    "src/github.com/traefik-datadog-plugin/statusprobe/statusprobe.go": REPO_DIR / "probe" / "statusprobe.go",
}


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO_DIR, capture_output=True, text=True, check=True).stdout.strip()


def run_image(image: str, *args: str, entrypoint: str | None = None) -> str:
    opts = ["--rm", "--network", "none", "--read-only", "--cap-drop", "ALL", "--user", UID]
    if entrypoint:
        opts += ["--entrypoint", entrypoint]
    return docker("run", *opts, image, *args).stdout


def test_the_plugin_image_holds_what_make_build_lays_out(tmp_path) -> None:
    images()
    copy = image_files(PLUGIN_IMAGE, "/plugins-local", tmp_path)
    files = sorted(str(p.relative_to(copy)) for p in copy.rglob("*") if p.is_file())
    assert files == sorted(PLUGIN_FILES)
    for name, source in PLUGIN_FILES.items():
        if source is not None:
            assert (copy / name).read_bytes() == source.read_bytes(), name
    modules = [copy / n for n, source in PLUGIN_FILES.items() if source is None]
    for m in modules:
        print(f"{m.relative_to(copy)}: {m.stat().st_size} bytes")
    postlink.assert_clean(modules)
    # plugin-net.wasm is the network build, under both names.
    net = copy / "src" / "traefik-datadog-plugin-net" / "plugin.wasm"
    assert (copy / "src" / "traefik-datadog-plugin" / "plugin-net.wasm").read_bytes() == net.read_bytes()
    assert net.read_bytes() != (copy / "src" / "traefik-datadog-plugin" / "plugin.wasm").read_bytes()
    # Owned by the uid every container runs as; /out, the init container's target, too.
    owners = run_image(PLUGIN_IMAGE, "-c", "stat -c '%u:%g %n' /out $(find /plugins-local)", entrypoint="sh")
    assert {line.split()[0] for line in owners.splitlines()} == {UID}


def test_labels_user_and_licence_of_both_images(tmp_path) -> None:
    images()
    for image, title in ((RELAY_IMAGE, "traefik-datadog-relay"), (PLUGIN_IMAGE, "traefik-datadog-plugin")):
        cfg = json.loads(docker("image", "inspect", image, "--format", "{{json .Config}}").stdout)
        labels = {k.removeprefix("org.opencontainers.image."): v for k, v in cfg["Labels"].items()}
        assert labels.pop("description")
        assert labels == {
            "title": title, "version": VERSION, "licenses": "MIT",
            "source": "https://github.com/traefik-datadog-plugin/traefik-datadog-plugin",
            "revision": git("rev-parse", "HEAD"), "created": git("log", "-1", "--format=%cI"),
        }, image
        assert cfg["User"] == UID, image
        licence = image_files(image, "/usr/share/doc/traefik-datadog-plugin/LICENSE", tmp_path / title)
        assert licence.read_bytes() == (REPO_DIR / "LICENSE").read_bytes(), image
    relay = json.loads(docker("image", "inspect", RELAY_IMAGE, "--format", "{{json .Config}}").stdout)
    assert relay["Entrypoint"] == ["/usr/local/bin/traefik-datadog-relay"]
    assert run_image(RELAY_IMAGE, "--help").startswith("traefik-datadog-relay: ")


def test_every_deploy_file_names_the_cargo_version() -> None:
    tags = set()
    for f in ("deploy/compose/docker-compose.yml", "deploy/k8s/traefik-values.yaml"):
        tags |= set(re.findall(r"ghcr\.io/traefik-datadog-plugin/traefik-datadog-(?:relay|plugin):(\S+)",
                               (REPO_DIR / f).read_text()))
    assert tags == {VERSION}
    defaults = set(re.findall(r"^ARG VERSION=(\S+)$", (REPO_DIR / "deploy" / "Dockerfile").read_text(), re.M))
    assert defaults == {VERSION}
