"""The header sweep, randomized: seeded requests with random methods, versions, Host headers,
paths, header counts, names and value bytes (obs-text included), some beyond Traefik's limits.
Each goes through the bare and the plugin router of one Traefik: identical statuses, and
exactly one record, within the documented sizes, for each request that reached the backend.

The seed is printed; replay one with ``HEADER_FUZZ_SEED=<seed>``. ``HEADER_FUZZ_COUNT`` (default
300) sets the number of requests; sending stops early after ``BUDGET_S`` seconds on a slow box
(the count actually sent is printed and must be at least ``MIN_SENT``).
"""

from __future__ import annotations

import os
import random
import time
from typing import Iterator

import pytest

from sweep import Probe, Sweep, check_records, started, statuses

BUDGET_S = 180.0
MIN_SENT = 50
TOKEN = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Field-value bytes Go's server accepts: visible ASCII, space, tab, obs-text.
VALUE = bytes(range(0x20, 0x7F)) + b"\t" + bytes(range(0x80, 0x100))
# Path bytes Go parses (a '%' must start a valid escape: those are added apart).
PATH = b"abcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/"


def sized(rnd: random.Random, top: int) -> int:
    """Log-uniform in [0, top]: most sizes small, some near the top."""
    return min(top, int(2 ** rnd.uniform(0, top.bit_length())) - 1)


def pick_bytes(rnd: random.Random, alphabet: bytes, n: int) -> bytes:
    return bytes(rnd.choices(alphabet, k=n))


def value(rnd: random.Random, n: int) -> bytes:
    v = pick_bytes(rnd, VALUE, n)
    return v.strip(b" \t") or b"v"


def probe(rnd: random.Random) -> Probe:
    method = rnd.choice(
        [b"GET", b"GET", b"GET", b"HEAD", b"POST", b"DELETE", b"OPTIONS", b"PURGE", b"FOO_BAR",
         pick_bytes(rnd, TOKEN, 1 + sized(rnd, 40)), pick_bytes(rnd, TOKEN, 1 + sized(rnd, 200_000))]
    )
    version = b"HTTP/1.0" if rnd.random() < 0.2 else b"HTTP/1.1"
    host = rnd.choice(
        [b"fuzz.test", b"fuzz.test", b"fuzz.test", b"Fuzz.Test:8443", b"", b"[::1]:80",
         None if version == b"HTTP/1.0" else b"fuzz.test",
         value(rnd, sized(rnd, 2_000)), pick_bytes(rnd, TOKEN, 1 + sized(rnd, 100_000))]
    )
    path = b"/" + pick_bytes(rnd, PATH, sized(rnd, 100_000))
    if rnd.random() < 0.2:
        path += rnd.choice([b"%41", b"%ff%fe", b"%00", b"%2F"])
    if rnd.random() < 0.2:
        path += b"?" + pick_bytes(rnd, PATH, sized(rnd, 10_000))
    if rnd.random() < 0.1:
        path += pick_bytes(rnd, bytes(range(0x80, 0x100)), 1 + sized(rnd, 20))
    headers = []
    budget = rnd.choice([4_000, 64_000, 1_100_000])
    used = 0
    names = [b"User-Agent", b"X-Big", b"Accept", b"Cookie", b"X-Forwarded-For", b"traceparent",
             b"x-datadog-tags", b"tracestate", b"baggage"]
    for _ in range(sized(rnd, 20_000)):
        if rnd.random() < 0.3:
            name = rnd.choice(names)
        else:
            name = b"X-" + pick_bytes(rnd, TOKEN, 1 + sized(rnd, 60))
        line = name + b": " + value(rnd, sized(rnd, 200_000))
        if used + len(line) > budget:
            break
        used += len(line)
        headers.append(line)
    return Probe(method=method, path=path, version=version, host=host, headers=headers)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    with started(tmp_path_factory.mktemp("fuzz")) as (t, backend):
        yield Sweep(t, backend)


def test_random_requests_are_unharmed_and_recorded_once(sweep: Sweep) -> None:
    seed = int(os.environ.get("HEADER_FUZZ_SEED") or random.SystemRandom().randrange(1 << 32))
    count = int(os.environ.get("HEADER_FUZZ_COUNT") or 300)
    print(f"\nHEADER_FUZZ_SEED={seed} HEADER_FUZZ_COUNT={count}")
    rnd = random.Random(seed)
    start = time.monotonic()
    heads = []
    for _ in range(count):
        if time.monotonic() - start > BUDGET_S:
            break
        p = probe(rnd)
        heads.append(len(p.head("r000000")))
        sweep.both(p)
    sent = list(sweep.sent.values())
    bad = check_records(sweep)
    reached = sum(1 for *_, r in sent if r)
    print(f"fuzz: {len(sent)} requests in {time.monotonic() - start:.0f}s, {reached} reached the "
          f"backend, heads {min(heads)}..{max(heads)} bytes, bare statuses {statuses(b for _, b, _, _ in sent)}")
    assert not bad, f"seed {seed}:\n" + "\n".join(bad[:20])
    assert len(sent) >= min(count, MIN_SENT)
