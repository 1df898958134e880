"""Network mode with a shared secret: only frames sealed with it become spans.

Real Traefik 3.7.15 with plugin-net.wasm (`mode: network`, `relaySecret`), `relay --udp` with the same
secret from a file (`--udp-secret-file`, as a mounted Kubernetes Secret), the official test agent,
a real DogStatsD listener.

- Genuine requests (one at a time, so the host race of traefik#11629 cannot mix datagrams): exactly
  one span each, with its request's resource and status, no fallback line, hits exact.
- Datagrams sent straight to the relay's port by someone without the secret: unkeyed frames (with
  and without a checksum), frames sealed with another secret, frames that set the MAC flag and
  append 16 bytes of their own, each sent three times: all dropped and counted
  `udp.unauthenticated`, exactly; none becomes a span. Garbage sent three times: `udp.malformed`.
- Genuinely sealed frames captured off the wire and replayed: the first copy is the record, the
  replays are `udp.duplicated`.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
import zlib

import requests

import load
from datadog import PluginRecord
from harness import REPO_DIR, udp_drops
from pipeline import Pipeline, start_network_pipeline

N = 60
COPIES = 3
METRIC = "traefik_datadog.request"
GEN = REPO_DIR / "target" / "release" / "examples" / "gen-records"


def relay_udp_port(p: Pipeline) -> int:
    i = p.relay.args.index("--udp")
    return int(p.relay.args[i + 1].rsplit(":", 1)[1])


def gen_frames(count: int, seed: int, secret: str) -> list[bytes]:
    """`count` frames sealed with `secret` by the relay's own generator, caught on a local socket."""
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "traefik-datadog-relay", "--example", "gen-records"],
                   cwd=REPO_DIR, check=True)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(10)
    try:
        subprocess.run([str(GEN), "--udp", f"127.0.0.1:{rx.getsockname()[1]}", "--count", str(count),
                        "--seed", str(seed), "--secret", secret], check=True)
        return [rx.recv(65535) for _ in range(count)]
    finally:
        rx.close()


def with_checksum(frame: bytes, flags: int = 0x01, mac: bytes = b"") -> bytes:
    """A frame (flags 0) re-flagged, `mac` after its body, and the CRC-32 of it all, which the
    relay checks first: what anyone can compute without the secret."""
    head = frame[:3] + bytes([flags]) + frame[4:] + mac
    return head + zlib.crc32(head).to_bytes(4, "little")


def forged(prefix: str, n: int) -> list[bytes]:
    recs = [PluginRecord(span_id=(1 << 50) + i, trace_id=(1 << 51) + i, path=f"{prefix}/{i}", service="payments",
                         status=500, start_ns=time.time_ns()) for i in range(n)]
    return [r.frame() for r in recs]


def counters_reach(p: Pipeline, want: dict[str, int], timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    c: dict[str, int] = {}
    while time.monotonic() < deadline:
        c = p.relay.counters()
        if all(c.get(k, -1) >= v for k, v in want.items()):
            return c
        time.sleep(0.5)
    return c


def test_network_auth(tmp_path, traefik_factory) -> None:
    secret = secrets.token_hex(32)
    secret_file = tmp_path / "udp-secret"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    p = start_network_pipeline(tmp_path, traefik_factory, plugin={"relaySecret": secret},
                               relay_extra=["--udp-secret-file", str(secret_file), "--telemetry-interval", "1s"])
    try:
        assert "frames must carry the --udp-secret MAC" in p.relay.log()
        assert secret not in p.relay.log()

        # --- genuine requests ------------------------------------------------------------------
        planned = load.plan(N)
        result = load.run(p.traefik.port("web"), planned, 1)
        assert result.sent == N and not result.errors and not result.wrong, (result.errors, result.wrong)

        # --- datagrams from someone without the secret -------------------------------------------
        unkeyed = forged("/forged/plain", 10)
        unkeyed_crc = [with_checksum(f) for f in forged("/forged/crc", 10)]
        fake_mac = [with_checksum(f, 0x05, os.urandom(16)) for f in forged("/forged/mac", 10)]
        wrong_key = gen_frames(10, seed=7, secret=secrets.token_hex(32))
        garbage = [b"\x00" + os.urandom(40 + i) for i in range(10)]
        captured = gen_frames(3, seed=9, secret=secret)
        unauthenticated = unkeyed + unkeyed_crc + fake_mac + wrong_key
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        port = relay_udp_port(p)
        for _ in range(COPIES):
            for d in unauthenticated + garbage + captured:
                tx.sendto(d, ("127.0.0.1", port))
                time.sleep(0.001)
        tx.close()

        want = {"udp.unauthenticated": COPIES * len(unauthenticated), "udp.malformed": COPIES * len(garbage),
                "udp.duplicated": (COPIES - 1) * len(captured)}
        counters_reach(p, want, timeout=30)
        drops = udp_drops(port)
        assert p.relay.stop() == 0
        final = p.relay.counters()
        got = {k: final.get(k) for k in want}
        assert got == want, final
        assert final.get("udp.corrupted") == 0, final
        assert drops == 0, f"the kernel dropped {drops} datagrams at the relay"

        # --- spans: each request once, nothing forged ------------------------------------------------
        spans = [s for t in requests.get(f"{p.agent.url}/test/session/traces", timeout=60).json() for s in t]
        by_path: dict[str, list[dict]] = {}
        for s in spans:
            url = s.get("meta", {}).get("http.url", "")
            by_path.setdefault("/" + url.split("://", 1)[-1].split("/", 1)[-1], []).append(s)
        assert not [k for k in by_path if k.startswith("/forged/")], sorted(by_path)[:10]
        assert not [s for s in spans if s.get("service") == "payments"]
        for req in planned:
            got_spans = by_path.get(req.path, [])
            assert len(got_spans) == 1, (req.path, got_spans)
            s = got_spans[0]
            assert (s["resource"], s["meta"].get("http.status_code"), s["meta"].get("http.method")) == \
                (req.host, str(req.status), req.method)
        replayed = [k for k in by_path if k.startswith("/api/v1/items/")]
        assert sum(len(by_path[k]) for k in replayed) == len(captured), replayed
        assert p.traefik.records() == [], "no request fell back to a log line"
        assert final.get("spans_sent") == final.get("udp.received"), final
        assert p.agent.check_failures() == ""

        # --- DogStatsD: built by the relay from accepted frames only ------------------------------------
        deadline = time.monotonic() + 10
        while (hits := sum(p.statsd.total(f"{METRIC}.hits", resource=h) for h in load.HOSTS)) < N \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert hits == N
    finally:
        p.relay.stop()
        p.agent.stop()
        p.statsd.close()
