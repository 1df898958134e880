"""Regenerates testdata/traefik-<version>/*.log: Traefik's real, complete output (its own
lines included) for a small fixed load through the plugin, in each log format.

    .venv/bin/python integration/capture_samples.py      # needs `make build` first

The files let the line parser (and any reader of the fallback lines) be tested without
running Traefik: see test_samples.py, which also tells what each file must contain.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp  # noqa: E402

from clients import Sent, send  # noqa: E402
from harness import DD_CONFIG, REPO_DIR, Backend, Route, Traefik, find_traefik  # noqa: E402

FORMATS = {"json": ("json", False), "console-color": ("common", False), "console-nocolor": ("common", True)}
BAD_CONFIG = {"service": "edge", "bogus": 1}
# (method, Host header, path, status, extra query)
LOAD = [
    ("GET", "a.test", "/r/1", 200, "q=secret"),
    ("POST", "b.test", "/r/2", 503, ""),
    ("GET", "c.test:8443", "/r/3", 404, ""),
    ("HEAD", "a.test", "/r/4", 301, ""),
]


async def _ws_and_sse(t: Traefik) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"{t.url('web')}/ws/1", headers={"Host": "ws.test"}) as ws:
            await ws.send_str("hello")
            await ws.receive(timeout=5)
        async with s.get(f"{t.url('web')}/sse/1?interval_ms=100",
                         headers={"Host": "sse.test", "Accept": "text/event-stream"}) as resp:
            await resp.read()


def traefik_version(binary: str) -> str:
    out = subprocess.run([binary, "version"], capture_output=True, text=True, check=True).stdout
    return next(line.split()[-1] for line in out.splitlines() if line.startswith("Version:"))


def main() -> None:
    binary = find_traefik()
    out_dir = REPO_DIR / "testdata" / f"traefik-{traefik_version(binary)}"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        backend = Backend(Path(tmp) / "backend.log")
        try:
            for name, (fmt, no_color) in FORMATS.items():
                t = Traefik(
                    Path(tmp) / name,
                    backend,
                    routes=[Route("web", ["dd"]), Route("badr", ["bad"])],
                    middlewares={"dd": dict(DD_CONFIG), "bad": BAD_CONFIG},
                    log_format=fmt,
                    no_color=no_color,
                    binary=binary,
                ).start()
                try:
                    for i, (method, host, path, status, query) in enumerate(LOAD):
                        send(t.port("web"), Sent(i, method, host, path, query=query, status=status,
                                                 user_agent="sample-client/1.0"))
                    send(t.port("badr"), Sent(99, "GET", "a.test", "/bad/1", user_agent="sample-client/1.0"))
                    asyncio.run(_ws_and_sse(t))
                    time.sleep(0.5)
                finally:
                    t.stop()
                shutil.copyfile(t.log_path, out_dir / f"{name}.log")
                print(f"wrote {out_dir / (name + '.log')}")
        finally:
            backend.stop()


if __name__ == "__main__":
    main()
