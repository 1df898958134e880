"""The release path, which this machine cannot run (no GitHub, no registry): .github/workflows/
release.yml checked by zizmor, the GitHub Actions linter (offline, every audit: the file must match
the workflow schema and have no finding), its steps run here where they can (the tag check, the
image step as a dry run), and scripts/images.sh's multi-platform commands printed exactly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from containers import VERSION
from harness import REPO_DIR

WORKFLOW = REPO_DIR / ".github" / "workflows" / "release.yml"
ZIZMOR = Path(sys.executable).parent / "zizmor"


def zizmor(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ZIZMOR), "--offline", "--persona", "pedantic", "--no-progress", str(path)],
                          capture_output=True, text=True, timeout=120)


def steps(job: str) -> dict[str, str]:
    wf = yaml.safe_load(WORKFLOW.read_text())
    return {s.get("name", s.get("uses", "")): s.get("run", "") for s in wf["jobs"][job]["steps"]}


def bash(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO_DIR, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO_DIR, capture_output=True, text=True, check=True).stdout.strip()


def test_the_workflow_passes_the_linter_which_can_fail(tmp_path) -> None:
    r = zizmor(WORKFLOW)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No findings to report" in r.stdout
    broken = tmp_path / ".github" / "workflows" / "release.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:", 1))
    assert zizmor(broken).returncode != 0


def test_a_version_tag_releases_the_zip_and_both_images_for_both_platforms() -> None:
    wf = yaml.safe_load(WORKFLOW.read_text())
    assert wf[True] == {"push": {"tags": ["v*"]}}  # YAML 1.1 reads the key `on` as true
    assert wf["permissions"] == {}
    assert wf["jobs"]["catalog-zip"]["permissions"] == {"contents": "write"}
    assert wf["jobs"]["images"]["permissions"] == {"contents": "read", "packages": "write"}
    zip_steps, image_steps = steps("catalog-zip"), steps("images")
    assert "make dist" in zip_steps.values()
    assert any(r.startswith('gh release create "$GITHUB_REF_NAME" dist/*.zip') for r in zip_steps.values())
    assert any("--platforms linux/amd64,linux/arm64 --push" in r for r in image_steps.values())


def test_the_tag_must_be_the_cargo_version() -> None:
    for job in ("catalog-zip", "images"):
        check = steps(job)["The tag is Cargo.toml's version"]
        assert bash(check, GITHUB_REF_NAME=f"v{VERSION}").returncode == 0
        assert bash(check, GITHUB_REF_NAME="v99.0.0").returncode == 1


def test_the_image_step_as_a_dry_run() -> None:
    push = steps("images")["Build both images for both platforms and push them"]
    r = bash(push + " --dry-run", GITHUB_REPOSITORY_OWNER="Traefik-Datadog-Plugin")
    assert r.returncode == 0, r.stderr
    args = (f"-f deploy/Dockerfile --build-arg VERSION={VERSION} --build-arg REVISION={git('rev-parse', 'HEAD')} "
            f"--build-arg CREATED={git('log', '-1', '--format=%cI')}")
    registry = "ghcr.io/traefik-datadog-plugin"  # the owner, lowercased as image names must be
    assert r.stdout.splitlines() == [
        "docker buildx create --name tdp-images --driver docker-container",
        *(f"docker buildx build --builder tdp-images --platform linux/amd64,linux/arm64 {args} --target {t} "
          f"-t {registry}/traefik-datadog-{t}:{VERSION} --push ." for t in ("relay", "plugin")),
    ]


def test_several_platforms_need_a_registry() -> None:
    r = bash("scripts/images.sh --platforms linux/amd64,linux/arm64 --dry-run")
    assert r.returncode == 2 and "add --push" in r.stderr
