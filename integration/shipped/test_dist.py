"""`make dist` writes the Plugin Catalog's release asset: exactly one zip for the version, holding
`.traefik.yml`, `plugin.wasm` and `LICENSE` at its root. Unpacked the way Traefik unpacks a
downloaded wasm plugin (pkg/plugins/client.go `unzipArchive`: a name's first path component is
dropped when it has more than one), it loads in the real Traefik with the manifest's `testData` as
the middleware configuration, as the catalog instantiates it, and records a request.
"""

from __future__ import annotations

import posixpath
import re
import subprocess
import zipfile
from pathlib import Path

import requests
import yaml

from harness import MODULE_NAME, REPO_DIR, Route, find_plugin_dir


def version() -> str:
    m = re.search(r'^version = "([^"]+)"$', (REPO_DIR / "Cargo.toml").read_text(), re.M)
    assert m
    return m.group(1)


def unzip_like_traefik(archive: Path, dest: Path) -> list[str]:
    written = []
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            parts = info.filename.split("/", 1)
            name = parts[1] if len(parts) == 2 else parts[0]
            clean = posixpath.normpath(name)
            assert ".." not in clean, info.filename
            target = dest / clean
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(info))
            written.append(clean)
    return sorted(written)


def test_dist_zip_loads_in_traefik(tmp_path, traefik_factory) -> None:
    out = tmp_path / "dist"
    out.mkdir()
    (out / "stale-v0.0.1.zip").write_bytes(b"old")
    r = subprocess.run(["make", "--no-print-directory", "-s", "dist", f"DIST={out}"], cwd=REPO_DIR,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    zips = sorted(p.name for p in out.glob("*.zip"))
    assert zips == [f"traefik-datadog-plugin-v{version()}.zip"]
    with zipfile.ZipFile(out / zips[0]) as z:
        assert sorted(z.namelist()) == [".traefik.yml", "LICENSE", "plugin.wasm"]
        manifest = yaml.safe_load(z.read(".traefik.yml"))
        # The shipped module, through the post-link step, not the linker's output.
        assert z.read("plugin.wasm") == (find_plugin_dir() / "plugin.wasm").read_bytes()
    assert (manifest["type"], manifest["runtime"], manifest.get("wasmPath", "plugin.wasm")) == (
        "middleware", "wasm", "plugin.wasm")
    assert manifest["displayName"] and manifest["summary"] and isinstance(manifest["testData"], dict)

    plugin_dir = tmp_path / "unpacked" / MODULE_NAME
    assert unzip_like_traefik(out / zips[0], plugin_dir) == [".traefik.yml", "LICENSE", "plugin.wasm"]
    t = traefik_factory(plugin_dir=plugin_dir, middlewares={"dd": manifest["testData"]},
                        routes=[Route("web", ["dd"])])
    resp = requests.get(t.url("web") + "/dist/1?status=201", headers={"Host": "catalog.test"}, timeout=10)
    assert resp.status_code == 201
    (rec,) = t.wait_records(["/dist/1"], timeout=10)
    assert (rec.data["RequestPath"], rec.data["DownstreamStatus"], rec.data["dd.service"]) == (
        "/dist/1", 201, manifest["testData"]["service"])
    assert t.config_errors() == []
