"""No client, however hostile, crashes Traefik, changes a response or makes the telemetry lie:
seeded random request heads sent to FRESH Traefik processes in the deployed topology (deployed.py:
Traefik at its default log level, the plugin in pipe mode on a mounted directory, the relay on the
FIFO, the Datadog test agent), each probe through the plugin's router (``web``) and a router
without it (``bare``) of the same Traefik, in front of the permissive RawBackend.

Why fresh processes with hostile requests first: on Intel CPUs with ERMS and FSRM (and x86-64
without AVX), Traefik's wazero v1.8.0 faults in Go's memmove (SIGSEGV kills the whole process, or
the guest traps and the client gets a 500 "wasm error: ... wasm stack trace") on one request with a
value of 2 KiB or more, often the first request of a new instance, before anything in it grew.
Every Traefik here runs with Go's memmove forced onto that path (memmove_path.py), so the crash
would show on any CPU; the test prints whether this one takes the path by itself. The first
requests each Traefik sees are hostile: every header the plugin reads and others, value sizes at
and around every power of two up to Traefik's own head limit, up to 2,000 headers, repeated names,
non-UTF-8 bytes, odd methods, long paths and queries. Each Traefik runs two phases, one sequential
(c=1) and one with 64 senders whose first 64 requests leave at once, all hostile; the order
alternates from one Traefik to the next, so that each concurrency meets fresh instances.

Asserted: Traefik still runs after each phase; for every probe, the plugin route's status is the
bare route's and its body never wazero's error; every request answered after routing is exactly one
span at the agent (those that reached the backend, and the few Traefik's proxy refused to forward,
500 for an unprintable Upgrade), every request Traefik refused before routing (400, 431) none, and
no span is anything else. Requests are told apart by a unique path prefix, which the span keeps (it
cuts a path to its first 1,024 bytes); a URI over 8 KiB is not read at all (README, "Limits"), so
those spans, whose path is "...", are counted together against the requests with such a URI.
Durations are printed, never asserted.

``HEADER_FUZZ_SEED`` replays a run (the probes sent to each Traefik and phase are a function of the
seed and their numbers; at c=64 the interleaving is the scheduler's); a failure writes the exact
heads of the offending probes to files. ``HEADER_FUZZ_TRAEFIKS`` (default 6): fresh Traefik
processes; ``HEADER_FUZZ_COUNT`` (default 300): probes per Traefik, half in each phase, each sent
through both routers. ``make fuzz`` runs it long.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Iterator

import deployed
from datadog import Relay, StatsdListener, TestAgent
from harness import READY_HOST, Route, Traefik
from memmove_path import cpu_can_crash
from pipeline import GUEST_DIR
from raw_backend import RawBackend
from sweep import HEAD_LIMIT, Answer, Probe, describe, exchange, exit_report, shows_wasm_internals, statuses

TRAEFIKS = int(os.environ.get("HEADER_FUZZ_TRAEFIKS") or 6)
COUNT = int(os.environ.get("HEADER_FUZZ_COUNT") or 300)
CONCURRENCY = 64
# The first requests of every phase are hostile (at c=64: the whole first wave); later ones are
# hostile or ordinary at random, so that instances which served extremes also serve plain ones.
HOSTILE_FIRST = CONCURRENCY
HOSTILE_LATER = 0.5
MAX_HEADERS = 2_000
MAX_NAME = 200
LARGEST_POWER = 20  # 2^20: Traefik refuses heads a little beyond (HEAD_LIMIT)
# Heads up to this size fit Traefik's limit whatever the request line (the largest single value
# it takes is about HEAD_LIMIT - 64).
FITS = HEAD_LIMIT - 1024
# A client's wait for one answer; Traefik answers everything far sooner, even on a busy machine.
SEND_TIMEOUT_S = 120.0
# Bounded wait for the spans (it ends as soon as they are all there), then long enough again for
# a duplicate to show: the relay flushes to the agent every second.
SPAN_WAIT_S = 180.0
SETTLE_S = 3.0

# The headers the plugin reads (Host apart, it is Probe.host), with the starts of values that make
# it parse further: a stream kind, a valid trace context, a sampling decision, propagation tags.
PLUGIN_READS: dict[bytes, list[bytes]] = {
    b"User-Agent": [b"Mozilla/5.0 (X11; Linux x86_64) ", b"curl/8.5.0"],
    b"Accept": [b"text/event-stream", b"*/*", b"application/json, text/plain;q=0.9, "],
    b"Content-Type": [b"application/grpc", b"application/grpc+proto", b"text/plain; charset="],
    b"Upgrade": [b"websocket", b"WebSocket, foo/1"],
    b"Connection": [b"Upgrade", b"upgrade, keep-alive"],
    b"Range": [b"bytes=0-", b"bytes=0-1,2-3,4-", b"bytes=-"],
    b"X-Forwarded-Proto": [b"https", b"wss", b"http"],
    b"traceparent": [b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", b"ff-", b"00-"],
    b"tracestate": [b"dd=s:2;o:rum;p:00f067aa0ba902b7;t.dm:-4,", b"dd=", b"foo=bar,"],
    b"x-datadog-trace-id": [b"1234567890123456789", b"18446744073709551615", b"0"],
    b"x-datadog-parent-id": [b"987654321", b"18446744073709551616"],
    b"x-datadog-sampling-priority": [b"2", b"-1", b"1"],
    b"x-datadog-origin": [b"synthetics", b"rum"],
    b"x-datadog-tags": [b"_dd.p.dm=-4,_dd.p.tid=640cfd8d00000000,", b"_dd.p.a=", b"_dd.p.usr.id="],
    b"x-b3-traceid": [b"463ac35c9f6413ad48485a3953bb6124", b"463ac35c9f6413ad"],
    b"x-b3-spanid": [b"a2fb4a1d1a96d312"],
    b"x-b3-sampled": [b"1", b"0", b"d"],
    b"baggage": [b"userId=alice,serverNode=DF%2028,", b"k=v;p=1,"],
}
# Names a random header must not take: they change the message's framing or the connection
# (a body announced and never sent, an h2c switch), which is not what is fuzzed here.
RESERVED = {b"content-length", b"transfer-encoding", b"expect", b"connection", b"upgrade",
            b"http2-settings", b"host"}
METHODS = [b"GET", b"GET", b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH",
           b"PURGE", b"FOO_BAR", b"get", b"M-SEARCH"]
INVALID_METHODS = [b"GET\x7f", b"G\xffT", b"GE(T"]


def table(alphabet: bytes) -> bytes:
    """A bytes.translate table mapping any byte onto ``alphabet``: random bytes of any length are
    drawn in C (a 1 MiB value costs a millisecond, not a second)."""
    return bytes(alphabet[i % len(alphabet)] for i in range(256))


TOKEN = table(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Field-value bytes Go's server accepts: visible ASCII, space, tab, obs-text (non-UTF-8 mostly).
VALUE = table(bytes(range(0x20, 0x7F)) + b"\t" + bytes(range(0x80, 0x100)))
ASCII = table(bytes(range(0x21, 0x7F)))
DIGITS = table(b"0123456789")
HEX = table(b"0123456789abcdef")
SAME = table(b"a")
HOST = table(b"abcdefghijklmnopqrstuvwxyz0123456789-.")
# Path bytes Go parses, no '%' (valid escapes are added apart); no '?' (the query is apart).
PATH = table(b"abcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/")
QUERY = table(b"abcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?")
OBS_TEXT = table(bytes(range(0x80, 0x100)))
DOT_SEGMENT = re.compile(rb"/\.")
# The response header the ``routed`` middleware (first on both routers) adds: the answer was given
# after routing.
ROUTED = "X-Fuzz-Routed"
# The request id, at the start of every path (the path is cut to 1,024 bytes in a span, its start
# kept): ``w<phase><n>`` through the plugin's router, ``b...`` through the bare one.
TARGET_ID = re.compile(rb"^/sweep/([wb]\d{7})/")
SPAN_ID = re.compile(r"^/sweep/(w\d{7})/")
# README, "Limits": the guest reads no URI longer than 8 KiB; its span's path is then the marker
# alone, so it cannot carry the request id. Those spans are counted together, and their number must
# be exactly that of the requests with such a URI which have no span of their own.
URI_READ_MAX = 8192
UNREAD = "..."


# --- the probes ----------------------------------------------------------------------------------

def fill(rnd: random.Random, alphabet: bytes, n: int) -> bytes:
    return rnd.randbytes(n).translate(alphabet)


def around_powers(rnd: random.Random, top: int) -> int:
    """A size in [0, top]: mostly at and around a power of two (2^k - 1, 2^k, 2^k + 1, k <= 20),
    else ``top`` itself or log-uniform."""
    r = rnd.random()
    if r < 0.7:
        n = (1 << rnd.randint(0, LARGEST_POWER)) + rnd.randint(-1, 1)
    elif r < 0.8:
        n = top - rnd.randint(0, 1)
    else:
        n = int(2 ** rnd.uniform(0, LARGEST_POWER + 1)) - 1
    return max(0, min(n, top))


def value_of(rnd: random.Random, n: int, start: bytes = b"") -> bytes:
    """``n`` value bytes: ``start`` (cut to n), then filler; no space or tab at either end (Go
    strips them: the plugin would see another size than the one drawn)."""
    alphabet = rnd.choice([VALUE, VALUE, ASCII, DIGITS, HEX, SAME])
    v = (start + fill(rnd, alphabet, max(0, n - len(start))))[:n]
    if v[:1] in (b" ", b"\t"):
        v = b"v" + v[1:]
    if v[-1:] in (b" ", b"\t"):
        v = v[:-1] + b"v"
    return v


def other_name(rnd: random.Random) -> bytes:
    n = max(1, around_powers(rnd, MAX_NAME)) if rnd.random() < 0.5 else rnd.randint(1, MAX_NAME)
    name = b"X-" + fill(rnd, TOKEN, n - 2) if n >= 3 and rnd.random() < 0.7 else fill(rnd, TOKEN, n)
    return b"X-Fuzz" if name.lower() in RESERVED else name


def header_count(rnd: random.Random) -> int:
    r = rnd.random()
    if r < 0.45:
        return rnd.randint(0, 24)
    if r < 0.75:
        return min(MAX_HEADERS, (1 << rnd.randint(0, 11)) + rnd.randint(-1, 1))
    if r < 0.85:
        return MAX_HEADERS
    return int(2 ** rnd.uniform(0, math.log2(MAX_HEADERS)))


def recase(rnd: random.Random, name: bytes) -> bytes:
    if rnd.random() < 0.7:
        return name
    return bytes(c ^ 0x20 if chr(c).isalpha() and rnd.random() < 0.5 else c for c in name)


def hostile_probe(rnd: random.Random) -> Probe:
    """A request head built to hurt: sizes drawn around powers of two within a head budget that
    mostly fits Traefik's limit (so that the plugin sees it), sometimes straddles it or exceeds
    it (Traefik refuses with 431). Only a head that fits is ever malformed (400): in one over the
    limit, Go answers a flaw near its end with 400 or 431 depending on how much of the head its
    reader had taken when it met the flaw, which differs from one connection to the next."""
    r = rnd.random()
    if r < 0.8:
        budget = FITS
    elif r < 0.9:
        budget = HEAD_LIMIT + rnd.randint(-64, 64)
    else:
        budget = HEAD_LIMIT + rnd.randint(1, 64 << 10)
    flawed = budget == FITS  # may be malformed
    # The largest value this probe draws: anything, or small ones (then many headers fit).
    top = HEAD_LIMIT if rnd.random() < 0.6 else 1 << rnd.randint(4, 16)
    room = budget - len(Probe(method=b"", path=b"", host=None).head("w0000000"))

    def take(n: int, overhead: int) -> int | None:
        """``n`` if it fits what is left, else (half the time) what is left, else None."""
        nonlocal room
        if n + overhead > room:
            if room - overhead < 0 or rnd.random() < 0.5:
                return None
            n = room - overhead
        room -= n + overhead
        return n

    def size(overhead: int = 0, least: int = 0) -> int:
        """A drawn size that fits what is left, at least ``least`` (then counted even if it does
        not fit: the head may end a little over its budget)."""
        nonlocal room
        n = take(max(least, around_powers(rnd, top)), overhead)
        if n is None or n < least:
            room -= least + overhead
            return least
        return n

    def spend(fixed: bytes, overhead: int = 0) -> bytes:
        nonlocal room
        room -= len(fixed) + overhead
        return fixed

    r = rnd.random()
    if r < 0.75:
        method = spend(rnd.choice(METHODS))
    elif r < 0.95:
        method = fill(rnd, TOKEN, size(least=1))
    else:
        method = spend(rnd.choice(INVALID_METHODS if flawed else METHODS))
    version = b"HTTP/1.0" if rnd.random() < 0.15 else b"HTTP/1.1"

    # Host: ordinary, long and valid, with a port, empty, random bytes (400), absent (400 unless
    # HTTP/1.0), twice (400). Its line costs 8 bytes beside the value.
    r = rnd.random() if flawed else rnd.random() * 0.75
    extra_host = None
    if r < 0.35:
        host: bytes | None = spend(b"fuzz.test", 8)
    elif r < 0.55:
        host = fill(rnd, HOST, size(8, least=1))
    elif r < 0.65:
        ported = b"fuzz.test:" + fill(rnd, DIGITS, rnd.randint(1, 30))
        host = spend(rnd.choice([b"Fuzz.Test:8443", b"[::1]:80", ported]), 8)
    elif r < 0.75:
        host = spend(b"", 8)
    elif r < 0.85:
        host = value_of(rnd, size(8))
    elif r < 0.9:
        host = None
    else:
        host, extra_host = spend(b"fuzz.test", 8), spend(b"Host: other.test", 2)

    path = b"/" + fill(rnd, PATH, size())
    # No dot-segment: Traefik resolves "/.." and would eat the request id.
    path = DOT_SEGMENT.sub(b"/_", path)
    if rnd.random() < 0.2:
        path += rnd.choice([b"%41", b"%ff%fe", b"%00", b"%2F"])
    if rnd.random() < 0.4:
        path += b"?" + fill(rnd, QUERY, size(1))
    if rnd.random() < 0.05:
        path += fill(rnd, OBS_TEXT, rnd.randint(1, 20))

    lines = [extra_host] if extra_host else []

    def add(name: bytes, start: bytes = b"") -> None:
        n = take(around_powers(rnd, top), len(name) + 4)
        if n is not None and len(lines) < MAX_HEADERS:
            lines.append(recase(rnd, name) + b": " + value_of(rnd, n, start))

    # Every header the plugin reads, half the time each, before the others take the room.
    for name, starts in PLUGIN_READS.items():
        if rnd.random() < 0.5:
            add(name, rnd.choice(starts + [b""]))
    if rnd.random() < 0.35:
        # One name many times (the host joins the values).
        name = rnd.choice([*PLUGIN_READS, other_name(rnd)])
        start = rnd.choice(PLUGIN_READS.get(name, [b""]))
        for _ in range(min(MAX_HEADERS, 1 << rnd.randint(1, 11))):
            add(name, start)
    for _ in range(header_count(rnd) - len(lines)):
        add(other_name(rnd))
    rnd.shuffle(lines)
    if flawed and lines and rnd.random() < 0.03:
        # A byte Go's server refuses in a value (400 on both routers).
        i = rnd.randrange(len(lines))
        lines[i] = lines[i] + rnd.choice([b"\x00", b"\x7f", b"\x01"]) + b"x"
    return Probe(method=method, path=path, version=version, host=host, headers=lines)


def ordinary_probe(rnd: random.Random) -> Probe:
    headers = [b"User-Agent: fuzz/1.0", b"Accept: */*"]
    if rnd.random() < 0.3:
        headers.append(b"traceparent: 00-%032x-%016x-01" % (rnd.getrandbits(128) | 1, rnd.getrandbits(64) | 1))
    if rnd.random() < 0.2:
        headers += [b"x-datadog-trace-id: %d" % (rnd.getrandbits(63) | 1),
                    b"x-datadog-parent-id: %d" % (rnd.getrandbits(63) | 1)]
    return Probe(method=rnd.choice([b"GET", b"GET", b"HEAD", b"POST"]), host=b"fuzz.test",
                 path=b"/ok/" + fill(rnd, table(b"abcdefghij0123456789"), rnd.randint(0, 40)), headers=headers)


def probes(seed: int, traefik: int, phase: int, concurrency: int) -> Iterator[tuple[bool, Probe]]:
    """The probes of one phase, (hostile?, probe), a function of the seed and the phase only."""
    rnd = random.Random(f"{seed}/{traefik}/{phase}/{concurrency}")
    n = 0
    while True:
        hostile = n < HOSTILE_FIRST or rnd.random() < HOSTILE_LATER
        yield hostile, hostile_probe(rnd) if hostile else ordinary_probe(rnd)
        n += 1


# --- the deployed Traefik, fresh ------------------------------------------------------------------

class FreshTraefik(Traefik):
    """Routers ``web`` (through the middleware) and ``bare`` on their own entry points, plus on each
    entry point a readiness router without the middleware (Host ready.test, first by priority):
    readiness is seen on both entry points without the plugin serving a request, so its instances
    are fresh when the fuzzer's first requests arrive."""

    def __init__(self, workdir: Path, backend: RawBackend, run_dir: Path) -> None:
        # Both routers start with ROUTED, which marks every answer given after routing: the
        # plugin, next in the chain, saw that request (one span), even when the backend never did
        # because Traefik's proxy refused to forward it (500/502); an answer without the mark was
        # given before routing (Go's server refusing the head: 400, 431), when no span may exist.
        super().__init__(workdir, backend, routes=[Route("web", ["routed", "dd"]), Route("bare", ["routed"])],
                         middlewares={"dd": deployed.plugin_config()},
                         extra_middlewares={"routed": {"headers": {"customResponseHeaders": {ROUTED: "1"}}}},
                         mounts=[f"{run_dir}:{GUEST_DIR}"], log_level=None, ice_lake_memmove=True)

    def dynamic_config(self) -> dict[str, Any]:
        cfg = super().dynamic_config()
        for name in self.routes:
            cfg["http"]["routers"][f"{name}-ready"] = {
                "entryPoints": [name], "rule": f"Host(`{READY_HOST}`)", "priority": 1 << 30, "service": "backend"}
        return cfg


@dataclass
class Stack:
    agent: TestAgent
    relay: Relay
    backend: RawBackend
    traefik: FreshTraefik


@contextlib.contextmanager
def deployed_stack(tmp: Path) -> Iterator[Stack]:
    """Test agent, DogStatsD listener, relay on the FIFO (it creates it, as in the pod), the
    RawBackend and a fresh Traefik (default log level, pipe mode on the mounted directory)."""
    with contextlib.ExitStack() as stack:
        agent = TestAgent(tmp / "agent").start()
        stack.callback(agent.stop)
        statsd = StatsdListener()
        stack.callback(statsd.close)
        (tmp / "run").mkdir(parents=True)
        relay = deployed.deployed_relay(tmp, agent, statsd).start()
        stack.callback(relay.stop)
        fifo = tmp / "run" / deployed.FIFO_NAME
        deadline = time.monotonic() + 30
        while not fifo.exists():
            assert time.monotonic() < deadline, f"relay did not create {fifo}: {relay.log()}"
            time.sleep(0.05)
        backend = RawBackend()
        stack.callback(backend.stop)
        t = FreshTraefik(tmp / "traefik", backend, tmp / "run")
        stack.callback(t.stop)
        t.start(timeout=60)
        yield Stack(agent, relay, backend, t)


# --- sending ---------------------------------------------------------------------------------------

@dataclass
class Sent:
    rid: str  # the plugin route's request id; the bare one is "b" + rid[1:]
    phase: int
    n: int
    hostile: bool
    probe: str  # describe(probe)
    head: int
    target: int  # the request-target's length as sent
    web: int | None
    bare: int | None
    routed: bool  # the plugin route's answer came after routing (it bears ROUTED)
    bare_routed: bool
    web_error: str
    bare_error: str
    wasm: bytes | None  # the plugin route's body when it shows wasm internals
    seconds: float  # both exchanges (printed for the slowest probe, never asserted)


def routed(a: Answer) -> bool:
    return re.search(rb"(?im)^" + ROUTED.encode() + rb":", a.head) is not None


def attempt(port: int, head: bytes) -> tuple[Answer, str]:
    try:
        return exchange(port, head, timeout=SEND_TIMEOUT_S), ""
    except OSError as e:
        return Answer(None, b"", b""), f"{type(e).__name__}: {e}"


def send_both(t: Traefik, phase: int, n: int, hostile: bool, probe: Probe) -> Sent:
    rid = f"w{phase}{n:06d}"
    # The plugin's router first: at c=64 the first wave meets the fresh instances together.
    t0 = time.monotonic()
    web, web_error = attempt(t.port("web"), probe.head(rid))
    bare, bare_error = attempt(t.port("bare"), probe.head("b" + rid[1:]))
    wasm = web.body[:400] if shows_wasm_internals(web.body) else None
    return Sent(rid, phase, n, hostile, describe(probe), len(probe.head(rid)),
                len(b"/sweep/") + len(rid) + len(probe.path), web.status, bare.status,
                routed(web), routed(bare), web_error, bare_error, wasm, time.monotonic() - t0)


def run_phase(t: Traefik, phase: int, source: Iterator[tuple[bool, Probe]], count: int,
              concurrency: int) -> list[Sent]:
    """``count`` probes from ``source`` through both routers by ``concurrency`` senders; the first
    ``concurrency`` leave together. Stops early if Traefik dies."""
    items = enumerate(islice(source, count))
    take = threading.Lock()
    together = threading.Barrier(max(1, min(concurrency, count)))
    dead = threading.Event()
    results: list[Sent | None] = [None] * count
    failures: list[BaseException] = []

    def sender() -> None:
        first = True
        try:
            while not dead.is_set():
                with take:  # probes are drawn in order, whichever sender takes them
                    item = next(items, None)
                if item is None:
                    return
                n, (hostile, probe) = item
                if first:
                    first = False
                    # Each sender blocks here after its first probe, so the first wave is
                    # ``concurrency`` distinct probes.
                    with contextlib.suppress(threading.BrokenBarrierError):
                        together.wait(timeout=600)
                results[n] = send_both(t, phase, n, hostile, probe)
                if exit_report(t) is not None:
                    dead.set()
        except BaseException as e:  # a bug here must fail the test, not vanish with the thread
            failures.append(e)
            together.abort()
            dead.set()

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if failures:
        raise failures[0]
    return [r for r in results if r is not None]


def reached_ids(backend: RawBackend) -> dict[str, int]:
    """The requests that reached the backend, with the length of the request-target it got (the
    URI the guest was given: Traefik forwards the URL it hands the plugin)."""
    return {m.group(1).decode(): n for tg, n in backend.seen().items() if (m := TARGET_ID.match(tg))}


@dataclass
class Spans:
    ids: Counter[str]  # spans per request id
    unread: int  # spans whose path is UNREAD
    strays: list[str]  # the URLs of the others: spans of no request sent

    def total(self) -> int:
        return sum(self.ids.values()) + self.unread + len(self.strays)


def span_counts(agent: TestAgent) -> Spans:
    """The spans at the agent by the path of their ``http.url`` (scheme://host + path, host as in
    ``http.host``)."""
    out = Spans(Counter(), 0, [])
    for s in agent.spans():
        meta = s.get("meta", {})
        url = meta.get("http.url", "")
        _, sep, rest = url.partition("://")
        host = meta.get("http.host", "")
        path = rest[len(host):] if sep and rest.startswith(host) else ""
        if m := SPAN_ID.match(path):
            out.ids[m.group(1)] += 1
        elif path == UNREAD:
            out.unread += 1
        else:
            out.strays.append(url[:200])
    return out


def wait_spans(agent: TestAgent, want: int) -> Spans:
    """Bounded: until ``want`` spans arrived, then SETTLE_S more for duplicates. Polls slow down
    from 0.2 s to 2 s (each one makes the agent encode every span it holds)."""
    deadline = time.monotonic() + SPAN_WAIT_S
    pause = 0.2
    while True:
        if span_counts(agent).total() >= want or time.monotonic() > deadline:
            break
        time.sleep(pause)
        pause = min(2.0, pause * 1.5)
    time.sleep(SETTLE_S)
    return span_counts(agent)


def write_heads(seed: int, traefik: int, phase: int, concurrency: int, numbers: set[int], out: Path) -> list[Path]:
    """The exact heads of the given probes (regenerated from the seed), one file each, for replaying
    them by hand (``nc 127.0.0.1 <port> < file``)."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for n, (_, probe) in enumerate(islice(probes(seed, traefik, phase, concurrency), max(numbers, default=-1) + 1)):
        if n in numbers:
            f = out / f"w{phase}{n:06d}.http"
            f.write_bytes(probe.head(f"w{phase}{n:06d}"))
            written.append(f)
    return written


def line(s: Sent | None, problem: str) -> str:
    if s is None:
        return problem
    return (f"{s.rid} ({'hostile' if s.hostile else 'ordinary'}): {problem}; bare {s.bare}"
            f"{' ' + s.bare_error if s.bare_error else ''}, plugin {s.web}{' ' + s.web_error if s.web_error else ''}"
            f"; {s.probe}")


def kind(problem: str) -> str:
    """A problem without its particulars, for counting them by kind."""
    if "wasm internals" in problem:
        return "the plugin route answered wasm internals"
    if f"with the path {UNREAD!r}" in problem:
        return f"spans with the path {UNREAD!r} unlike the requests with a URI over {URI_READ_MAX} bytes"
    return problem


def relay_summary(log: str) -> str:
    """The relay's warnings and errors (a frame it could not decode...) and its last counters."""
    lines = log.splitlines()
    said = [ln for ln in lines if " warn: " in ln or " error: " in ln][:10]
    counters = [ln for ln in lines if " info: counters " in ln][-1:] or lines[-3:]
    return "\n".join(ln[:400] for ln in said + counters) or "(nothing)"


def problems_of(sent: list[Sent], reached: dict[str, int], spans: Spans) -> list[tuple[Sent | None, str]]:
    """Every way a probe was harmed or miscounted (None: no one probe)."""
    out: list[tuple[Sent | None, str]] = []
    unread = 0  # requests whose span is one of the UNREAD ones
    for s in sent:
        uri = reached.get(s.rid, s.target)
        if s.routed and uri > URI_READ_MAX and spans.ids.get(s.rid, 0) == 0:
            unread += 1
            continue
        if s.wasm is not None:
            out.append((s, f"the plugin route answered wasm internals {s.wasm[:300]!r}"))
        if s.web != s.bare or s.web_error or s.bare_error:
            out.append((s, "the statuses differ"))
        if s.routed != s.bare_routed:
            out.append((s, f"answered after routing through the {'plugin' if s.routed else 'bare'} route only"))
        if ("b" + s.rid[1:] in reached) != (s.rid in reached):
            only = "bare" if s.rid not in reached else "plugin"
            out.append((s, f"reached the backend through the {only} route only"))
        if s.rid in reached and not s.routed:
            out.append((s, "reached the backend, yet its answer is not marked as routed"))
        want = 1 if s.routed else 0
        if spans.ids.get(s.rid, 0) != want:
            why = ("reached the backend" if s.rid in reached else "answered by Traefik after routing"
                   if s.routed else "refused by Traefik before routing")
            out.append((s, f"{spans.ids.get(s.rid, 0)} spans (want {want}: {why})"))
    if spans.unread != unread:
        out.append((None, f"{spans.unread} spans with the path {UNREAD!r}, for {unread} requests with a URI "
                          f"over {URI_READ_MAX} bytes and no span of their own"))
    return out


# --- the test ---------------------------------------------------------------------------------------

def test_hostile_heads_on_fresh_traefiks_change_nothing_and_are_one_span_each(tmp_path: Path) -> None:
    possible, cpu = cpu_can_crash()
    print(f"\nmemmove crash possible on this CPU: {'yes' if possible else 'no'} ({cpu}); every Traefik here "
          "runs Go's memmove on the Ice Lake path regardless")
    seed = int(os.environ.get("HEADER_FUZZ_SEED") or random.SystemRandom().randrange(1 << 32))
    replay = f"HEADER_FUZZ_SEED={seed} HEADER_FUZZ_TRAEFIKS={TRAEFIKS} HEADER_FUZZ_COUNT={COUNT}"
    print(replay)
    offending = tmp_path / "offending"
    totals: Counter[str] = Counter()
    web_statuses: Counter[str] = Counter()
    failures: list[str] = []
    kinds: Counter[str] = Counter()
    started = time.monotonic()
    for i in range(TRAEFIKS):
        # Alternating order: each concurrency is the first a fresh Traefik sees, every other time.
        plan = [(0, 1, (COUNT + 1) // 2), (1, CONCURRENCY, COUNT // 2)]
        if i % 2:
            plan = [(0, CONCURRENCY, (COUNT + 1) // 2), (1, 1, COUNT // 2)]
        concurrency_of = {phase: c for phase, c, _ in plan}
        with deployed_stack(tmp_path / f"traefik{i}") as st:
            sent: list[Sent] = []
            for phase, concurrency, count in plan:
                t0 = time.monotonic()
                got = run_phase(st.traefik, phase, probes(seed, i, phase, concurrency), count, concurrency)
                sent += got
                slowest = max(got, key=lambda s: s.seconds)
                print(f"traefik {i} phase {phase} c={concurrency}: {len(got)} probes "
                      f"({sum(s.hostile for s in got)} hostile), heads {min(s.head for s in got)}.."
                      f"{max(s.head for s in got)} bytes, in {time.monotonic() - t0:.0f}s (slowest {slowest.rid}: "
                      f"{slowest.seconds:.1f}s); plugin route statuses {statuses(s.web for s in got)}")
                report = exit_report(st.traefik)
                if report is not None:
                    lost = [s for s in got if s.web is None or s.web_error]
                    trapped = [s for s in got if s.wasm is not None]
                    write_heads(seed, i, phase, concurrency, {s.n for s in lost[:64] + trapped[:16]},
                                offending / f"traefik{i}")
                    raise AssertionError(
                        f"{replay}: traefik {i} died in phase {phase} (c={concurrency}).\n{report}\n"
                        f"{len(trapped)} answers showed wasm internals before:\n"
                        + "".join(line(s, f"answered {s.wasm[:200]!r}") + "\n" for s in trapped[:16])
                        + f"{len(lost)} requests without an answer (heads in {offending / f'traefik{i}'}), "
                        f"the first:\n" + "\n".join(line(s, "no answer") for s in lost[:64])
                        + "".join(f"\nbefore that, {f}" for f in failures))
            reached = reached_ids(st.backend)
            spans = wait_spans(st.agent, sum(s.routed for s in sent))
            report = exit_report(st.traefik)
            assert report is None, f"{replay}: traefik {i} died after its requests were answered.\n{report}"
            relay_said = relay_summary(st.relay.log())

        problems = problems_of(sent, reached, spans)
        counts = Counter(probes=len(sent), hostile=sum(s.hostile for s in sent),
                         reached=sum(s.rid in reached for s in sent), routed=sum(s.routed for s in sent),
                         spans=spans.total(), unread=spans.unread, strays=len(spans.strays), problems=len(problems))
        print(f"traefik {i}: {counts['probes']} probes, {counts['reached']} reached the backend through the "
              f"plugin, {counts['routed']} answered after routing, {counts['spans']} spans ({counts['unread']} "
              f"with the path {UNREAD!r}: URIs over {URI_READ_MAX} bytes), {counts['strays']} spans of no "
              f"request, {counts['problems']} problems")
        totals.update(counts)
        web_statuses.update(str(s.web) for s in sent)
        if problems or spans.strays:
            # Reported at the end, with every other Traefik's: one kind of harm must not hide another.
            numbers: dict[int, set[int]] = {}
            for s, _ in problems:
                if s is not None:
                    numbers.setdefault(s.phase, set()).add(s.n)
            for phase, ns in numbers.items():
                write_heads(seed, i, phase, concurrency_of[phase], set(sorted(ns)[:64]), offending / f"traefik{i}")
            failures.append(f"traefik {i}: {len(problems)} problems; {len(spans.strays)} spans of no request sent "
                            f"(their path does not start with a request id), e.g. {spans.strays[:5]}; heads in "
                            f"{offending / f'traefik{i}'}:\n" + "\n".join(line(s, p) for s, p in problems[:20])
                            + f"\nthe relay said:\n{relay_said}")
            kinds.update(kind(p) for _, p in problems)
            kinds.update({"a span of no request sent": len(spans.strays)} if spans.strays else {})
    print(f"fuzz: {TRAEFIKS} fresh traefiks, {totals['probes']} probes ({totals['hostile']} hostile) through both "
          f"routes in {time.monotonic() - started:.0f}s; {totals['reached']} reached the backend through the plugin, "
          f"{totals['routed']} answered after routing, {totals['spans']} spans ({totals['unread']} with the path "
          f"{UNREAD!r}, {totals['strays']} of no request); "
          f"plugin route statuses "
          f"{dict(sorted(web_statuses.items()))}")
    assert not failures, (f"{replay}: problems by kind {dict(kinds.most_common())}\n" + "\n".join(failures))
    assert (totals["spans"], totals["strays"], totals["problems"]) == (totals["routed"], 0, 0)
