"""deploy/compose/ in Docker: Traefik restarted, then recreated, keeps the plugin.

The plugin container copied plugins-local/ into a named volume once and exited; Traefik mounts that
volume read-only. A restart (same container) and a recreate (a new container, as a changed image or
configuration makes, without running the plugin container again) must both load the module from
the volume as before: every request of the three batches, before and after each, is exactly one
span and one hit, and no plugin line reaches Traefik's log.
"""

from __future__ import annotations

import load
from containers import PORT, assert_exact, stack, whoami_answer

BATCH = 500
CONCURRENCY = 8


def test_traefik_restarted_and_recreated_keeps_the_plugin(tmp_path) -> None:
    with stack(tmp_path, "tdp-traefik-restart") as s:
        planned = load.plan(3 * BATCH)
        batches = [planned[i * BATCH:(i + 1) * BATCH] for i in range(3)]
        results = [load.run(PORT, batches[0], CONCURRENCY, check=whoami_answer)]

        before = s.compose.container("traefik").info
        s.compose.run("restart", "traefik")
        s.compose.wait_ready()
        restarted = s.compose.container("traefik").info
        assert restarted["Id"] == before["Id"] and restarted["State"]["StartedAt"] != before["State"]["StartedAt"]
        results.append(load.run(PORT, batches[1], CONCURRENCY, check=whoami_answer))

        s.compose.run("up", "-d", "--no-build", "--pull", "never", "--no-deps", "--force-recreate", "traefik")
        s.compose.wait_ready()
        recreated = s.compose.container("traefik").info
        assert recreated["Id"] != before["Id"]
        # The plugin container was not run again: it exited once, before the first start.
        plugin = s.compose.container("plugin").info
        assert (plugin["State"]["Status"], plugin["State"]["ExitCode"], plugin["RestartCount"]) == ("exited", 0, 0)
        results.append(load.run(PORT, batches[2], CONCURRENCY, check=whoami_answer))

        spans = s.wait_spans({r.path for r in planned})
        merged = load.LoadResult(errors=[e for r in results for e in r.errors], wrong=[w for r in results for w in r.wrong])
        print(f"3 x {BATCH} requests around a restart and a recreate; spans {len(spans)}")
        assert_exact(s, planned, merged, spans)
