"""Malformed input on every relay input at once, interleaved with valid records.

One relay reads `--stdin`, `--follow FILE`, `--pipe FIFO` and `--udp ADDR`. Each input gets valid
plugin records (exactly as the guest and Traefik write them) between bad items: garbage, non-UTF-8
bytes, a 1 MiB line, truncated JSON carrying the marker, a wrong schema, wrong types and ids, random
bytes and bad frames on the FIFO, bad datagrams. Asserted exactly:
- every valid record reaches the official test agent once, nothing from a bad item does;
- the relay keeps running (more valid records afterwards still arrive) and exits 0 on SIGTERM;
- per input, `malformed` (and for UDP `corrupted`/`duplicated`) in the final counters line and in
  the `traefik_datadog.relay.*` DogStatsD telemetry equal the bad items sent;
- on stdin every foreign line is copied to stdout byte for byte, record lines are not.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import time
import zlib
from pathlib import Path

import pytest

from datadog import PluginRecord, Relay, StatsdListener, TestAgent, plugin_records, spans_by_path

RNG = random.Random(20261125)


def json_line_with_message(message: str | bytes) -> bytes:
    """A Traefik JSON-format line whose `message` is the given text."""
    m = json.dumps(message, ensure_ascii=False).encode() if isinstance(message, str) else message
    return (b'{"level":"info","entryPointName":"web","routerName":"web@file","middlewareName":"dd@file",'
            b'"middlewareType":"wasm","time":"2026-11-25T14:49:47Z","message":' + m + b"}\n")


def console_line_with_message(message: str | bytes) -> bytes:
    """A Traefik console-format line of the wasm middleware whose message is the given text."""
    m = message.encode("utf-8", "surrogateescape") if isinstance(message, str) else message
    return b"2026-11-25T14:49:47Z INF " + m + b" middlewareType=wasm routerName=web@file\n"


def noise(n: int, avoid: bytes = b"\n") -> bytes:
    """n random bytes without any byte of `avoid`."""
    return bytes(b for b in (RNG.randrange(256) for _ in range(n * 2)) if b not in avoid)[:n]


def bad_lines(bad: list[PluginRecord]) -> list[tuple[str, bytes]]:
    """Lines carrying the plugin's marker that cannot be read: each is counted once as malformed."""
    r = iter(bad)

    def text() -> str:
        return next(r).text()

    t = [text() for _ in range(12)]
    big = next(r)
    big.user_agent = "u" * (1 << 20)
    return [
        ("console record cut in half", console_line_with_message(t[0][: len(t[0]) // 2])),
        ("JSON line, record in message cut", json_line_with_message(t[1][: len(t[1]) // 2])),
        ("JSON line cut in half", json_line_with_message(t[2])[: len(json_line_with_message(t[2])) // 2] + b"\n"),
        ("schema 2", console_line_with_message(t[3].replace('"schema":1', '"schema":2'))),
        ("schema 2 in a JSON line", json_line_with_message(t[4].replace('"schema":1', '"schema":2'))),
        ("status is a string", console_line_with_message(
            t[5].replace('"DownstreamStatus":200', '"DownstreamStatus":"abc"')
            .replace('"DownstreamStatus":201', '"DownstreamStatus":"abc"'))),
        ("span id missing", console_line_with_message(
            json.dumps({k: v for k, v in json.loads(t[6]).items() if k != "dd.span_id"}, separators=(",", ":")))),
        ("span id not a number", console_line_with_message(t[7].replace('"dd.span_id":"', '"dd.span_id":"x'))),
        ("non-UTF-8 in a console record", console_line_with_message(t[8].replace(".test", ".t\udcffst"))),
        ("non-UTF-8 in a JSON line", json_line_with_message(t[9]).replace(b".test", b".t\xffst")),
        ("status out of range", console_line_with_message(re.sub(r'"DownstreamStatus":\d+', '"DownstreamStatus":70000', t[10]))),
        ("the marker alone", console_line_with_message('{"marker":"traefik-datadog","schema":1,')),
        ("1 MiB record line", big.json_line()),
    ]


FOREIGN_LINES = [
    b"garbage line \x00 with a NUL and no marker\n",
    b"\xff\xfe\x80 binary \xc3\x28 junk\n",
    b"x" * (1 << 20) + b"\n",  # 1 MiB, not ours: copied through
    b'{"level":"info","message":"Starting provider traefik-datadog"}\n',
    b"\n",
    b'{"marker":"traefik-datadog-other","schema":1}\n',
    # A bare record is not where the plugin's log call puts one: not taken, copied through.
    b'{"marker":"traefik-datadog","schema":1}\n',
    noise(1000) + b"\n",
    b'{"level":"error","message":"half a JSON \n',
]


def line_stream(ok: list[PluginRecord], bad: list[PluginRecord], with_foreign: bool) -> tuple[list[bytes], int]:
    """Chunks to write: valid record lines (JSON and console) around every bad and foreign line."""
    bads = bad_lines(bad)
    extra = [b for _, b in bads] + (FOREIGN_LINES if with_foreign else [])
    it = iter(ok)
    chunks: list[bytes] = []
    per = len(ok) // (len(extra) + 1)
    for item in [None, *extra]:
        if item is not None:
            chunks.append(item)
        for i in range(per):
            rec = next(it)
            chunks.append(rec.console_line() if i % 2 else rec.json_line())
    chunks.extend(r.json_line() for r in it)
    return chunks, len(bads)


def frame_stream(ok: list[PluginRecord], bad: list[PluginRecord]) -> tuple[list[bytes], int]:
    """FIFO writes: valid frames around bad items; each bad item counts once (a run of garbage
    is counted once, so every bad item is followed by a valid frame)."""
    b = iter(bad)
    no_magic = b"\nTD"  # random bytes without "T"/"D" cannot hold a fake magic

    def body_of(f: bytes) -> bytes:
        return f[6:]

    f1, f2, f3 = (next(b).frame() for _ in range(3))
    trailing = body_of(f3) + b"\x01\x02\x03"
    items = [
        noise(1000, no_magic),  # random bytes
        next(b).frame(version=2),  # a future format version: skipped by its length
        b"TD\x01\x00" + (300).to_bytes(2, "little") + noise(300, no_magic),  # header fine, body garbage
        b"TD\x01\x00\xff\xff" + noise(100, no_magic),  # length beyond 4096
        f1[:40],  # a frame cut inside its user agent, the next frame follows
        b"TD\x01\x00\x00\x00",  # empty body
        b"TD\x01\x00" + len(trailing).to_bytes(2, "little") + trailing,  # body with trailing bytes
        f2[:3],  # a cut header
    ]
    it = iter(ok)
    per = len(ok) // (len(items) + 1)
    chunks: list[bytes] = []
    for item in [None, *items]:
        if item is not None:
            chunks.append(item)
        chunks.extend(next(it).frame() for _ in range(per))
    chunks.extend(r.frame() for r in it)
    return chunks, len(items)


def checksummed(r: PluginRecord) -> bytes:
    f = bytearray(r.frame())
    f[3] = 0x01  # FLAG_CHECKSUM: CRC-32 of header and body appended
    return bytes(f) + zlib.crc32(bytes(f)).to_bytes(4, "little")


def datagram_stream(ok: list[PluginRecord], bad: list[PluginRecord]) -> tuple[list[bytes], dict[str, int]]:
    """Datagrams: valid frames (half of them checksummed) around bad ones, a checksummed frame
    with a changed byte (`corrupted`), and the last valid record sent twice (`duplicated`).
    Returns the datagrams and the counts expected."""
    b = iter(bad)
    two = next(b).frame() + next(b).frame()
    flipped = bytearray(checksummed(next(b)))
    flipped[30] ^= 0x20
    malformed = [
        noise(500),  # random bytes
        two,  # two frames in one datagram
        next(b).frame()[:100],  # truncated
        next(b).frame(version=2),
        next(b).frame() + b"\x00",  # one trailing byte
        bytes(60_000),  # 60 kB of zeros
        b"TD\x01\x00" + (200).to_bytes(2, "little") + noise(200),  # body garbage
    ]
    dgrams: list[bytes] = []
    it = iter(ok)
    per = len(ok) // (len(malformed) + 4)
    # An empty datagram is the network mode's probe: neither a record nor malformed.
    for item in [None, *malformed, b"", bytes(flipped), None]:
        if item is not None:
            dgrams.append(item)
        for i in range(per):
            rec = next(it)
            dgrams.append(checksummed(rec) if i % 2 else rec.frame())
    rest = list(it)
    dgrams.extend(r.frame() for r in rest)
    dgrams.append(checksummed(ok[-1]))  # a record already sent, again
    return dgrams, {"malformed": len(malformed), "corrupted": 1, "duplicated": 1}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_malformed_input_on_every_input(tmp_path: Path) -> None:
    agent = TestAgent(tmp_path / "agent").start()
    statsd = StatsdListener()
    fifo = tmp_path / "run" / "traefik-datadog.fifo"
    fifo.parent.mkdir()
    log = tmp_path / "traefik.log"
    log.write_bytes(b"")
    udp_port = free_udp_port()
    stdout = tmp_path / "relay.stdout"
    relay = Relay(tmp_path / "relay", [
        "--stdin", "--follow", str(log), "--follow-from", "beginning", "--pipe", str(fifo),
        "--udp", f"127.0.0.1:{udp_port}", "--agent-url", agent.url, "--dogstatsd-url", statsd.url,
        "--flush-interval", "200ms"], stdin=subprocess.PIPE, stdout_path=stdout)
    try:
        relay.start()
        relay.wait_log("started:")
        assert relay.proc is not None and relay.proc.stdin is not None
        ok: dict[str, list[PluginRecord]] = {}
        expected: dict[str, dict[str, int]] = {}
        for name, n in (("stdin", 60), ("follow", 60), ("pipe", 60), ("udp", 60)):
            ok[name] = plugin_records(f"/mal/{name}/ok", n)
        bad = {name: plugin_records(f"/mal/{name}/bad", 20) for name in ok}

        # stdin: valid lines, bad lines, foreign lines (copied through).
        chunks, n_bad = line_stream(ok["stdin"], bad["stdin"], with_foreign=True)
        for c in chunks:
            relay.proc.stdin.write(c)
        relay.proc.stdin.flush()
        expected["stdin"] = {"malformed": n_bad}
        # --follow: the same kinds of lines in the file (foreign ones ignored).
        chunks, n_bad = line_stream(ok["follow"], bad["follow"], with_foreign=True)
        with open(log, "ab") as f:
            for c in chunks:
                f.write(c)
                f.flush()
        expected["follow"] = {"malformed": n_bad}
        # --pipe: frames and garbage, one write each, as the guest's writes.
        frames, n_bad = frame_stream(ok["pipe"], bad["pipe"])
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            for c in frames:
                assert os.write(fd, c) == len(c)
        finally:
            os.close(fd)
        expected["pipe"] = {"malformed": n_bad}
        # --udp: one datagram each.
        dgrams, counts = datagram_stream(ok["udp"], bad["udp"])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for d in dgrams:
                s.sendto(d, ("127.0.0.1", udp_port))
                time.sleep(0.0005)
        expected["udp"] = counts

        def wait_delivered(timeout: float = 30.0) -> dict[str, dict[str, list[dict]]]:
            deadline = time.monotonic() + timeout
            while True:
                got = {name: spans_by_path(agent, f"/mal/{name}/") for name in ok}
                if all({r.path for r in ok[name]} <= got[name].keys() for name in ok):
                    return got
                if time.monotonic() > deadline:
                    short = {name: len({r.path for r in ok[name]} - got[name].keys()) for name in ok}
                    pytest.fail(f"valid records missing per input: {short}\n{relay.log()[-3000:]}")
                time.sleep(0.1)

        wait_delivered()
        assert relay.proc.poll() is None, relay.log()[-3000:]

        # Still running and reading every input: more valid records after the bad ones.
        more = {name: plugin_records(f"/mal/{name}/ok", 20, start=1000) for name in ok}
        relay.proc.stdin.write(b"".join(r.json_line() for r in more["stdin"]))
        relay.proc.stdin.close()  # end of stdin: that input ends, the others go on
        with open(log, "ab") as f:
            f.write(b"".join(r.console_line() for r in more["follow"]))
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        for r in more["pipe"]:
            os.write(fd, r.frame())
        os.close(fd)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for r in more["udp"]:
                s.sendto(r.frame(), ("127.0.0.1", udp_port))
        for name in ok:
            ok[name] += more[name]
        wait_delivered()
        time.sleep(1.0)  # duplicates would show
        got = {name: spans_by_path(agent, f"/mal/{name}/") for name in ok}
        assert relay.proc.poll() is None, "the relay stopped when stdin ended: " + relay.log()[-2000:]
        assert relay.stop() == 0
        c = relay.counters()
        assert c, relay.log()[-3000:]
        print(f"\ncounters: { {k: v for k, v in c.items() if k.split('.')[0] in ok} }")

        for name in ok:
            want = {r.path: r for r in ok[name]}
            assert got[name].keys() == want.keys(), (name, sorted(got[name].keys() - want.keys())[:5])
            dupes = {k: len(v) for k, v in got[name].items() if len(v) != 1}
            assert dupes == {}, (name, dupes)
            wrong = [k for k, (s,) in got[name].items()
                     if (s["span_id"], s["resource"], s["meta"].get("http.status_code"))
                     != (want[k].span_id, want[k].host, str(want[k].status))]
            assert wrong == [], (name, wrong[:5])
            counted = {k: c.get(f"{name}.{k}") for k in expected[name]}
            assert counted == expected[name], (name, counted, expected[name])
            assert c[f"{name}.received"] == len(want), (name, c[f"{name}.received"], len(want))
            assert c[f"{name}.queue_full"] == 0
        assert c["spans_sent"] == sum(len(v) for v in ok.values()) and c["spans_dropped"] == 0, c
        # The same in the relay's DogStatsD telemetry.
        deadline = time.monotonic() + 3
        while statsd.samples("traefik_datadog.relay.spans_sent") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        for name in ok:
            for kind, n in expected[name].items():
                assert statsd.total(f"traefik_datadog.relay.records_{kind}", input=name) == n, (name, kind)
        assert statsd.malformed == []
        # stdin: exactly the foreign lines were copied through, in order.
        # (its own info lines share stdout and are left out)
        assert relay.copied() == b"".join(FOREIGN_LINES)
        assert "panicked" not in relay.log()
        assert agent.check_failures() == ""
    finally:
        relay.stop()
        agent.stop()
        statsd.close()
