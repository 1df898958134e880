"""The agent changes its rate mid-run (0.1 -> 0.5) while requests keep coming over several
connections: the relay learns the new rate with its next payload's answer and publishes it; every
instance decides with it at the latest 2 s (its look interval) after the file changed, so every
request sent from then on is decided at 0.5, exactly by dd-trace's Knuth rule for its trace id; those
sent during the change carry whichever rate their instance had, stated in `_dd.agent_psr`, and are
decided exactly at that rate. Every span arrives."""

from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path
from typing import Any

from sampling import CHECK_EVERY_S, OWN_KEY, keeps, set_agent_rates, sleep_until, start

BEFORE = {OWN_KEY: 0.1, "service:,env:": 1.0}
AFTER = {OWN_KEY: 0.5, "service:,env:": 1.0}
WORKERS = 4


class Sender:
    """WORKERS connections sending GET /change/<n> one after another until stopped; keeps each
    request's send time (time.time(), taken before the request leaves)."""

    def __init__(self, port: int):
        self.port = port
        self.sent: dict[str, float] = {}
        self.failures: list[str] = []
        self._n = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work) for _ in range(WORKERS)]
        for t in self._threads:
            t.start()

    def _work(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self._stop.is_set():
            with self._lock:
                self._n += 1
                path = f"/change/{self._n}"
            t = time.time()
            try:
                conn.request("GET", path, headers={"Host": "a.test"})
                r = conn.getresponse()
                r.read()
                ok = r.status == 200 and r.getheader("X-Backend") == "1"
            except (OSError, http.client.HTTPException) as e:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                path = f"{path} {e!r}"
            with self._lock:
                if ok:
                    self.sent[path] = t
                else:
                    self.failures.append(path)
            time.sleep(0.01)
        conn.close()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


def test_instances_follow_a_changed_agent_rate(tmp_path: Path, backend: Any) -> None:
    s = start(tmp_path, backend, BEFORE)
    sender = None
    try:
        sleep_until(s.wait_rates(BEFORE) + CHECK_EVERY_S + 0.1)
        sender = Sender(s.traefik.port("web"))
        time.sleep(1.0)
        # Everything sent so far must be in the agent before the new session hides it.
        with sender._lock:
            first = set(sender.sent)
        got = s.wait_spans(first, "/change/", timeout=60)
        assert first <= got.keys()
        for p in first:
            assert got[p][0]["metrics"]["_dd.agent_psr"] == 0.1, got[p][0]
        switched = time.time()
        set_agent_rates(s.agent, AFTER)
        seen = s.wait_rates(AFTER)
        # At least 20 requests sent after the bound (about 1 s of them on an idle machine; a busy
        # one takes longer to send them, so the wait is on the count, not on a fixed time).
        sleep_until(seen + CHECK_EVERY_S + 1.0)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with sender._lock:
                if sum(1 for t in sender.sent.values() if t >= seen + CHECK_EVERY_S) >= 20:
                    break
            time.sleep(0.1)
        sender.stop()
        assert not sender.failures, sender.failures[:5]
        after_switch = {p: t for p, t in sender.sent.items() if t >= switched}
        got = s.wait_spans(set(after_switch), "/change/", timeout=60)
        assert set(after_switch) <= got.keys(), f"{len(set(after_switch) - got.keys())} spans missing"
        last_old = None
        n_settled = 0
        for p, t in after_switch.items():
            (sp,) = got[p]
            rate = sp["metrics"]["_dd.agent_psr"]
            assert rate in (0.1, 0.5), sp
            assert sp["metrics"]["_sampling_priority_v1"] == (1.0 if keeps(sp["trace_id"], rate) else 0.0), sp
            assert sp["meta"]["_dd.p.dm"] == "-1", sp
            if t >= seen + CHECK_EVERY_S:
                n_settled += 1
                assert rate == 0.5, (p, t - seen, sp)
            if rate == 0.1:
                last_old = max(last_old or t, t)
        assert n_settled >= 20, n_settled
        lag = "none" if last_old is None else f"{last_old - seen:+.2f} s"
        print(f"published {seen - switched:.2f} s after the agent changed; last request decided at 0.1 "
              f"sent {lag} from the publish; {len(after_switch)} requests after the change, "
              f"{n_settled} after the 2 s bound, all at 0.5")
    finally:
        if sender is not None:
            sender.stop()
        s.stop()
