"""An input that cannot work fails the relay's start instead of leaving it idle: `--follow` at a
directory, `--pipe` in a directory that does not exist, `--udp` on a port already bound, and
`--health-listen` on a port already bound. Each time the relay exits 1 at once (no input thread is
left waiting) with exactly one line, an error on stderr naming the flag and the cause, in the text
and the JSON log formats alike, and nothing on stdout."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Callable

import pytest
from datadog import RELAY_BIN
from harness import free_port
from pipeline import relay_env

# Each case: its arguments (given a work directory and the sockets it holds), and the error's text.
Case = Callable[[Path, list[socket.socket]], tuple[list[str], str]]


def follow_directory(tmp: Path, _: list[socket.socket]) -> tuple[list[str], str]:
    return ["--follow", str(tmp)], f"--follow: {tmp} is a directory; give the path of Traefik's log file"


def pipe_missing_directory(tmp: Path, _: list[socket.socket]) -> tuple[list[str], str]:
    fifo = tmp / "not-mounted" / "traefik-datadog.fifo"
    return ["--pipe", str(fifo)], f"--pipe: cannot create FIFO {fifo}: No such file or directory"


def udp_port_taken(_: Path, held: list[socket.socket]) -> tuple[list[str], str]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    held.append(s)
    addr = f"127.0.0.1:{s.getsockname()[1]}"
    return ["--udp", addr], f"--udp: cannot bind {addr}: Address already in use"


def health_port_taken(tmp: Path, held: list[socket.socket]) -> tuple[list[str], str]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen()
    held.append(s)
    addr = f"127.0.0.1:{s.getsockname()[1]}"
    return ["--pipe", str(tmp / "traefik-datadog.fifo"), "--health-listen", addr], \
        f"--health-listen: cannot bind {addr}: Address already in use"


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("case", [follow_directory, pipe_missing_directory, udp_port_taken, health_port_taken],
                         ids=lambda c: c.__name__)
def test_the_start_fails_naming_the_flag(case: Case, fmt: str, tmp_path: Path) -> None:
    held: list[socket.socket] = []
    try:
        args, want = case(tmp_path, held)
        r = subprocess.run([str(RELAY_BIN), *args, "--agent-url", f"http://127.0.0.1:{free_port()}",
                            "--log-format", fmt],
                           capture_output=True, text=True, timeout=60, env=relay_env(), stdin=subprocess.DEVNULL)
    finally:
        for s in held:
            s.close()
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, lines
    if fmt == "json":
        line = json.loads(lines[0])
        assert (line["level"], line["logger"]) == ("error", "traefik-datadog-relay"), line
        msg = line["msg"]
    else:
        head, sep, msg = lines[0].partition(" traefik-datadog-relay error: ")
        assert sep and head.endswith("Z"), lines[0]
    assert msg.startswith(want), msg
    if case is health_port_taken:
        assert not (tmp_path / "traefik-datadog.fifo").exists(), "nothing set up before the port failed"
