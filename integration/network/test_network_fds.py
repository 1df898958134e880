"""Open file descriptors of Traefik with plugin-net.wasm (network mode): bounded across 10 config
reloads and a 100,000-request soak.

What Traefik's socket extension does with fds (docs/network-mode.md; traefik#11629): every handler build (at start, and again on every dynamic-config reload) gets a
wasi-go module with its own fd table and dups Traefik's stdin/stdout/stderr for it (3 fds) that are
never closed; a socket a guest instance opens is never closed when the pool drops the instance.
The plugin answers with one UDP socket per destination per handler build: an instance adopts a
socket a sibling already connected (tagged by its fd flags) and opens one only when there is
none. With the defaults the only destination is the relay (DogStatsD straight from the guest,
`directStatsd`, is off). So the bound is, per handler build, 3 stdio fds + 1 UDP socket (+ a
socket more when instances of the first burst open concurrently, before the first is tagged),
and a soak on an unchanged config must not add any UDP socket beyond that race.

TCP sockets (the clients' connections and Traefik's idle connections to the backend) belong to
Traefik's connection pools, not to the plugin: they are counted apart and bounded by the clients'
concurrency.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import load
from harness import Traefik
from pipeline import start_network_pipeline

RELOADS = 10
SOAK = 100_000
CONCURRENCY = 128
BURST = 1000
BURST_CONCURRENCY = 32
STDIO_PER_BUILD = 3
SOCKETS_PER_BUILD = 1  # the relay's (directStatsd is off by default)
# Instances of a burst that start together may each find no tagged socket yet and open their own.
OPEN_RACE_SLACK = 2


def socket_kinds() -> dict[str, str]:
    kinds = {}
    for proto in ("tcp", "tcp6", "udp", "udp6", "unix"):
        try:
            rows = open(f"/proc/net/{proto}").read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            cols = row.split()
            kinds[cols[6] if proto == "unix" else cols[9]] = proto.rstrip("6")
    return kinds


def fds(t: Traefik) -> dict[str, Any]:
    """{"total", "udp", "tcp", "other"} and the targets of the other fds."""
    assert t.proc is not None
    kinds = socket_kinds()
    c: Counter[str] = Counter()
    other: Counter[str] = Counter()
    for fd in os.listdir(f"/proc/{t.proc.pid}/fd"):
        try:
            target = os.readlink(f"/proc/{t.proc.pid}/fd/{fd}")
        except OSError:
            continue
        kind = kinds.get(target[8:-1], "socket") if target.startswith("socket:[") else "other"
        c[kind] += 1
        if kind == "other":
            other[target.replace(str(t.workdir), "<workdir>")] += 1
    return {"total": sum(c.values()), "udp": c["udp"], "tcp": c["tcp"], "other": c["other"] + c["unix"] + c["socket"],
            "targets": dict(other)}


def wait_version(p: Any, version: str, n: int, timeout: float = 60.0) -> float:
    """Sends single requests until a DogStatsD line tagged with the new `version` arrives (the reload
    is live); returns how long it took."""
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < timeout:
        res = load.run(p.traefik.port("web"), load.plan(1, start=n + i), 1)
        assert res.errors == [] and res.wrong == [], (res.errors, res.wrong)
        i += 1
        if p.statsd.total("traefik_datadog.request.hits", version=version) > 0:
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(f"configuration with version {version!r} not live after {timeout}s:\n"
                         f"{p.traefik.output_tail(10)}")


def test_fds_bounded_over_reloads_and_soak(tmp_path, traefik_factory, capsys) -> None:
    p = start_network_pipeline(tmp_path, traefik_factory, watch=True)
    t = p.traefik
    try:
        warm = load.run(t.port("web"), load.plan(2000), BURST_CONCURRENCY)
        assert warm.errors == [] and warm.wrong == []
        time.sleep(1)
        before = fds(t)

        took = []
        for i in range(RELOADS):
            conf = {**t.middlewares["dd"], "version": f"1.2.3-reload{i}"}
            t.rewrite_dynamic({"dd": conf})
            took.append(wait_version(p, conf["version"], 1_000_000 + i * 1000))
            burst = load.run(t.port("web"), load.plan(BURST, start=2_000_000 + i * BURST), BURST_CONCURRENCY)
            assert burst.errors == [] and burst.wrong == [], (burst.errors[:3], burst.wrong[:3])
        time.sleep(1)
        after_reloads = fds(t)

        soak = load.run(t.port("web"), load.plan(SOAK, start=3_000_000), CONCURRENCY)
        assert soak.errors == [], soak.errors[:5]
        assert soak.wrong == [], soak.wrong[:5]
        time.sleep(2)
        after_soak = fds(t)
        builds = 1 + RELOADS

        with capsys.disabled():
            print(f"\nTraefik fds (total / udp / tcp / other): before {before['total']} / {before['udp']} / "
                  f"{before['tcp']} / {before['other']}; after {RELOADS} reloads (each live after "
                  f"{min(took):.1f}-{max(took):.1f}s) {after_reloads['total']} / {after_reloads['udp']} / "
                  f"{after_reloads['tcp']} / {after_reloads['other']}; after {SOAK} requests at c={CONCURRENCY} "
                  f"{after_soak['total']} / {after_soak['udp']} / {after_soak['tcp']} / {after_soak['other']}")
            print(f"  other fds after the soak: {after_soak['targets']}")

        # Reloads: 3 stdio fds and 2 sockets (+ the open race) per handler build, nothing more.
        assert after_reloads["other"] - before["other"] <= STDIO_PER_BUILD * RELOADS, (before, after_reloads)
        assert after_reloads["udp"] <= builds * (SOCKETS_PER_BUILD + OPEN_RACE_SLACK), (before, after_reloads)
        # Soak on an unchanged config: the live build's instances adopt its sockets; no new stdio.
        assert after_soak["udp"] - after_reloads["udp"] <= OPEN_RACE_SLACK, (after_reloads, after_soak)
        assert after_soak["other"] <= after_reloads["other"], (after_reloads, after_soak)
        # TCP: Traefik's listener, idle backend connections (<= the clients' concurrency), and client
        # connections still closing.
        assert after_soak["tcp"] <= 1 + 2 * CONCURRENCY, after_soak
        bound = before["total"] + RELOADS * (STDIO_PER_BUILD + SOCKETS_PER_BUILD + OPEN_RACE_SLACK) \
            + OPEN_RACE_SLACK + 2 * CONCURRENCY
        assert after_soak["total"] <= bound, (before, after_reloads, after_soak, bound)
    finally:
        p.relay.stop()
        p.agent.stop()
        p.statsd.close()
