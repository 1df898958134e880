"""Every way records cannot reach the relay is said at Traefik's DEFAULT log level (ERROR), once per
wasm instance, naming the fix, and requests are answered as ever: no directory mounted (`auto`:
records would be INFO lines that the default level drops; `pipe`: ERROR lines), a `pipePath` beside
the relay's FIFO under another name, a spool the plugin cannot write (a read-only mount), and `log`
mode (Traefik's http-wasm host answers `log_enabled` yes for every level, so the plugin cannot know
its level and says what happens at the default). A FIFO that is merely missing while the spool works
(a relay not started yet) says nothing."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from harness import Route
from lines import messages

N = 10
DOCS = "https://github.com/traefik-datadog-plugin/traefik-datadog-plugin#install-in-traefik"
LOST = "INFO log lines, lost unless Traefik's log.level is INFO or DEBUG (its default is ERROR)"
PIPE = "/run/dd/traefik-datadog.fifo"

NO_MOUNT_AUTO = (
    f"traefik-datadog: no directory mounted at /run/dd (pipePath {PIPE}): records go out as {LOST}; "
    "add settings.mounts: [\"<dir>:/run/dd\"] to the plugin's static configuration and run "
    f"traefik-datadog-relay --pipe <dir>/traefik-datadog.fifo ({DOCS})"
)
NO_MOUNT_PIPE = (
    f"traefik-datadog: no directory mounted at /run/dd (pipePath {PIPE}): records go out as ERROR log lines, "
    "one per request, that no relay on the pipe reads; add settings.mounts: [\"<dir>:/run/dd\"] to the plugin's "
    f"static configuration and run traefik-datadog-relay --pipe <dir>/traefik-datadog.fifo ({DOCS})"
)
OTHER_FIFO = (
    "traefik-datadog: pipePath /run/dd/wrong.fifo does not exist but /run/dd/traefik-datadog.fifo does: the "
    "relay reads another FIFO, so records wait in /run/dd/wrong.fifo.spool where no relay drains them, then go "
    f"out as ERROR log lines; set pipePath to the path the relay's --pipe names ({DOCS})"
)
SPOOL_RO = (
    f"traefik-datadog: the FIFO {PIPE} cannot be written (errno 52, not supported, as on a read-only mount) and "
    f"neither can the spool {PIPE}.spool (errno 52, not supported, as on a read-only mount): records go out as "
    f"{LOST}; mount the directory writable "
    f"for Traefik's user (no \":ro\" in settings.mounts) and run the relay on the FIFO ({DOCS})"
)
LOG_MODE = (
    f"traefik-datadog: mode \"log\": records go out as {LOST}; set Traefik's log.level to INFO (and read them "
    f"with traefik-datadog-relay --stdin), or use the pipe: mode \"auto\" with settings.mounts ({DOCS})"
)


def setup(case: str, tmp: Path) -> tuple[dict[str, Any], list[str], str | None]:
    """The middleware, the mounts and the line expected, per case."""
    run = tmp / "run"
    run.mkdir()
    if case == "no-mount-auto":
        return {}, [], NO_MOUNT_AUTO
    if case == "no-mount-pipe":
        return {"mode": "pipe"}, [], NO_MOUNT_PIPE
    if case == "other-fifo":
        os.mkfifo(run / "traefik-datadog.fifo", 0o600)
        return {"pipePath": "/run/dd/wrong.fifo"}, [f"{run}:/run/dd"], OTHER_FIFO
    if case == "spool-read-only":
        return {}, [f"{run}:/run/dd:ro"], SPOOL_RO
    if case == "log-mode":
        return {"mode": "log"}, [], LOG_MODE
    assert case == "relay-not-started"
    return {}, [f"{run}:/run/dd"], None


@pytest.mark.parametrize(
    "case", ["no-mount-auto", "no-mount-pipe", "other-fifo", "spool-read-only", "log-mode", "relay-not-started"]
)
def test_each_way_records_cannot_leave_is_one_error_line_per_instance(case: str, tmp_path: Path,
                                                                       traefik_factory: Any) -> None:
    plugin, mounts, want = setup(case, tmp_path)
    t = traefik_factory(middlewares={"dd": plugin}, routes=[Route("web", ["dd"]), Route("bare")],
                        mounts=mounts, log_level=None)
    for n in range(N):
        r = requests.get(t.url("web") + f"/m/{n}", timeout=10)
        assert r.status_code == 200, (n, r.status_code, r.text[:200])
    ours = [(lvl, m) for lvl, m in messages(t.output())
            if m.startswith("traefik-datadog: ") and not m.startswith("traefik-datadog: mode \"log\" has no")]
    if want is None:
        # The spool keeps the records until the relay starts: nothing to say.
        time.sleep(1)
        assert ours == [], ours
        assert (tmp_path / "run" / "traefik-datadog.fifo.spool").stat().st_size > 0
        return
    deadline = time.monotonic() + 10
    while not any(m == want for _, m in ours) and time.monotonic() < deadline:
        time.sleep(0.1)
        ours = [(lvl, m) for lvl, m in messages(t.output()) if m == want]
    said = [(lvl, m) for lvl, m in messages(t.output()) if m == want]
    assert said, f"expected {want!r}; Traefik said:\n{t.output_tail(20)}"
    assert {lvl for lvl, _ in said} == {"error"}
    # Once per instance: Traefik starts one when it builds the handler and more under concurrency;
    # N sequential requests need a handful at most, never one per request.
    assert 1 <= len(said) <= N // 2, said
    others = [m for lvl, m in messages(t.output())
              if lvl == "error" and m.startswith("traefik-datadog: ") and m != want and not m.startswith("{")]
    assert others == [], others
