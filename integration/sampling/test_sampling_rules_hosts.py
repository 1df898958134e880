"""`samplingRules` apply per host, independently, before the agent's rate: a.test at 0.25, b.test at
0.75, POST /load/1... on c.test at 0; every other c.test request has no rule and, the agent having
answered no rates, is kept by the default mechanism. Each span is decided exactly as dd-trace's Knuth
rule decides for its trace id at its rule's rate: priority 2 or -1, `_dd.p.dm=-3`,
`_dd.rule_psr=<rate>`; every span arrives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import load
from sampling import keeps, start

N = 900
RULES = [
    {"host": "a.test", "sampleRate": 0.25},
    {"host": "B.test", "sampleRate": "0.75"},  # CRD form: a string; hosts match without case
    {"host": "c.test", "path": "/load/1", "method": "post", "sampleRate": 0},
]


def rule_rate(host: str, method: str, path: str) -> float | None:
    if host == "a.test":
        return 0.25
    if host == "b.test":
        return 0.75
    if method == "POST" and path.startswith("/load/1"):
        return 0.0
    return None


def test_rules_for_two_hosts_apply_independently(tmp_path: Path, backend: Any) -> None:
    s = start(tmp_path, backend, None, middlewares={"dd": {"samplingRules": RULES}})
    try:
        planned = load.plan(N)
        result = load.run(s.traefik.port("web"), planned, concurrency=4)
        assert result.sent == N and not result.wrong and not result.errors, (result.wrong[:5], result.errors[:5])
        got = s.wait_spans({p.path for p in planned}, "/load/", timeout=120)
        kept: dict[str, list[int]] = {}
        for p in planned:
            (sp,) = got[p.path]
            rate = rule_rate(p.host, p.method, p.path)
            m, meta = sp["metrics"], sp["meta"]
            if rate is None:
                assert (m["_sampling_priority_v1"], meta["_dd.p.dm"]) == (1.0, "-0"), sp
                assert "_dd.rule_psr" not in m and "_dd.agent_psr" not in m, sp
                continue
            keep = keeps(sp["trace_id"], rate)
            assert m["_sampling_priority_v1"] == (2.0 if keep else -1.0), sp
            assert meta["_dd.p.dm"] == "-3" and m["_dd.rule_psr"] == rate, sp
            k = kept.setdefault(f"{p.host} {rate}", [0, 0])
            k[0] += keep
            k[1] += 1
        assert kept["c.test 0.0"][0] == 0 and kept["c.test 0.0"][1] > 0
        print("kept by rule: " + ", ".join(f"{k}: {a}/{n}" for k, (a, n) in sorted(kept.items())))
    finally:
        s.stop()
