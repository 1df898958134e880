"""The relay's own log, as Datadog's container log collection reads it: info lines on stdout, warnings
and errors on stderr, in both formats. The deployed topology (the real Traefik in pipe mode, the
relay on the FIFO) with the agent's port closed and a 1 s payload deadline, so that the relay says
all three levels: info (start, counters), warn (a DD_TAGS pair it skips, the agent not answering),
error (payloads dropped). With `--log-format json` every line of both streams is one JSON object
with `time` (RFC 3339, UTC), `level`, `logger` and `msg`; in the default text format every line is
`<time> traefik-datadog-relay <level>: <msg>`. Nothing else is written."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import load
import pytest
from datadog import Relay, StatsdListener
from harness import DD_CONFIG, Route, free_port
from pipeline import FIFO_NAME, GUEST_DIR, relay_env

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
TEXT = re.compile(r"^(\S+) traefik-datadog-relay (info|warn|error): (.*)$")


def parse(line: str, fmt: str) -> tuple[str, str, str]:
    """(time, level, msg) of one of the relay's lines; fails on anything else."""
    if fmt == "json":
        obj = json.loads(line)
        assert set(obj) == {"time", "level", "logger", "msg"} and obj["logger"] == "traefik-datadog-relay", obj
        t, level, msg = obj["time"], obj["level"], obj["msg"]
    else:
        m = TEXT.match(line)
        assert m, f"not a relay line: {line!r}"
        t, level, msg = m.groups()
    assert TIME.match(t), t
    return t, level, msg


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_levels_split_by_stream(fmt: str, tmp_path: Path, traefik_factory: Any) -> None:
    statsd = StatsdListener()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    fifo = run_dir / FIFO_NAME
    stdout = tmp_path / "relay.stdout"
    relay = Relay(tmp_path / "relay",
                  ["--pipe", str(fifo), "--agent-url", f"http://127.0.0.1:{free_port()}",  # nobody listens
                   "--dogstatsd-url", statsd.url, "--payload-deadline", "1s", "--flush-interval", "200ms",
                   "--telemetry-interval", "1s", *(["--log-format", "json"] if fmt == "json" else [])],
                  stdout_path=stdout, env=relay_env(DD_TAGS="team:edge, bad|key:1")).start()
    traefik = None
    try:
        deadline = time.monotonic() + 10
        while not fifo.exists():
            assert time.monotonic() < deadline, relay.log()
            time.sleep(0.05)
        conf = {**DD_CONFIG, "mode": "pipe", "pipePath": f"{GUEST_DIR}/{FIFO_NAME}"}
        traefik = traefik_factory(middlewares={"dd": conf}, routes=[Route("web", ["dd"])],
                                  mounts=[f"{run_dir}:{GUEST_DIR}"])
        result = load.run(traefik.port("web"), load.plan(10), concurrency=2)
        assert result.sent == 10 and not result.errors and not result.wrong
        relay.wait_log("spans dropped", timeout=60)
    finally:
        if traefik is not None:
            traefik.stop()
        code = relay.stop()
        statsd.close()
    assert code == 0
    out = [parse(line, fmt) for line in stdout.read_text().splitlines()]
    err = [parse(line, fmt) for line in relay.log_path.read_text().splitlines()]
    assert {level for _, level, _ in out} == {"info"}
    assert {level for _, level, _ in err} == {"warn", "error"}
    assert any(m.startswith("started: inputs pipe") for _, _, m in out)
    assert any(m.startswith("counters ") for _, _, m in out)
    assert any(lv == "warn" and m == "DD_TAGS: entries left out: 1 with '|', '#', a control character or a reserved key"
               for _, lv, m in err)
    assert any(lv == "warn" and "holding" in m and "retrying" in m for _, lv, m in err)
    assert any(lv == "error" and "spans dropped" in m for _, lv, m in err)
    print(f"{fmt}: {len(out)} info lines on stdout, {len(err)} warn/error lines on stderr")
