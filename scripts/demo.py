"""The demo: Traefik + the plugin (pipe mode) + the relay + local Datadog stand-ins.

Starts, as processes on 127.0.0.1: a backend, the official Datadog APM test agent (trace
intake), a UDP DogStatsD listener, the relay reading the FIFO, and Traefik 3.7.15 loading the
plugin from a plugins-local folder. Sends a few requests, then prints what Datadog would
receive: the spans the test agent accepted and the DogStatsD metrics.

Usage: make demo            (python scripts/demo.py [--keep] to leave it running)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))

from harness import Backend, Route, Traefik  # noqa: E402
from pipeline import start_pipe_pipeline  # noqa: E402

REQUESTS = [
    ("GET", "shop.example.com", "/", 200),
    ("GET", "shop.example.com", "/cart", 200),
    ("POST", "shop.example.com", "/checkout", 500),
    ("GET", "api.example.com", "/v1/users/7", 200),
    ("GET", "api.example.com", "/v1/users/404", 404),
    ("PUT", "api.example.com", "/v1/users/7", 503),
    ("GET", "www.example.com", "/old", 301),
]


def send(port: int, method: str, host: str, path: str, status: int, headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}?status={status}", method=method,
                                 headers={"Host": host, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):  # show the 301 itself
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true", help="leave everything running until Ctrl-C")
    args = ap.parse_args()
    urllib.request.install_opener(urllib.request.build_opener(_NoRedirect))

    with tempfile.TemporaryDirectory(prefix="tdp-demo-") as tmp:
        base = Path(tmp)
        backend = Backend(base / "backend.log")
        started: list[Traefik] = []

        def factory(**kw):
            t = Traefik(base / "traefik", backend, **{"routes": [Route("web", ["dd"])], **kw})
            started.append(t)
            return t.start()

        print("starting: backend, Datadog test agent, DogStatsD listener, relay, Traefik + plugin ...", flush=True)
        p = start_pipe_pipeline(base, factory, plugin={"service": "edge", "env": "demo", "version": "1.0.0"})
        port = p.traefik.port("web")
        print(f"Traefik on http://127.0.0.1:{port}  (plugin: pipe mode -> {p.fifo} -> relay)\n")
        try:
            for method, host, path, status in REQUESTS:
                got = send(port, method, host, path, status)
                print(f"  {method:6s} {host}{path:14s} -> {got}")
            # A request arriving with Datadog context: the plugin span continues that trace.
            got = send(port, "GET", "api.example.com", "/v1/traced", 200,
                       {"x-datadog-trace-id": "1234567890", "x-datadog-parent-id": "42",
                        "x-datadog-sampling-priority": "1"})
            print(f"  GET    api.example.com/v1/traced -> {got}  (with x-datadog-trace-id: 1234567890)")
            print("\nwaiting for the relay's flush (1 s traces, 2 s metrics) ...\n", flush=True)
            time.sleep(3.0)

            spans = [s for s in p.agent.spans() if "/__ready/" not in s["meta"].get("http.url", "")]
            print(f"Datadog APM received {len(spans)} spans (test agent /v0.4/traces):")
            print(f"  {'name':16s} {'service':8s} {'resource':18s} {'status':6s} {'error':5s} {'ms':>7s}  trace_id / parent_id")
            for s in sorted(spans, key=lambda s: s["start"]):
                print(f"  {s['name']:16s} {s['service']:8s} {s['resource']:18s} {s['meta'].get('http.status_code', ''):6s} "
                      f"{s['error']:<5d} {s['duration'] / 1e6:7.2f}  {s['trace_id']} / {s['parent_id']}")
            if spans:
                print("\n  tags of the first span:")
                for k, v in sorted(spans[0]["meta"].items()):
                    print(f"    {k}: {v}")
                for k, v in sorted(spans[0]["metrics"].items()):
                    print(f"    {k}: {v}")

            print("\nDogStatsD received (sum per metric and resource):")
            sums: dict[tuple[str, str], float] = defaultdict(float)
            for m in p.statsd.metrics:
                if m.name.startswith("traefik_datadog.request."):
                    key = (m.name, m.tags.get("resource", ""))
                    sums[key] += len(m.values) if m.kind == "d" else sum(m.values)
            for (name, res), v in sorted(sums.items()):
                unit = "samples" if name.endswith("duration") else ""
                print(f"  {name:36s} resource:{res:18s} {v:g} {unit}")
            example = next((m for m in p.statsd.metrics if m.name.endswith("request.hits")), None)
            if example:
                tags = ",".join(f"{k}:{v}" for k, v in example.tags.items())
                print(f"  e.g. {example.name}:{example.values[0]:g}|c|#{tags}")
            if args.keep:
                print(f"\nrunning; try: curl -H 'Host: shop.example.com' http://127.0.0.1:{port}/  (Ctrl-C to stop)")
                while True:
                    time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            p.relay.stop()
            for t in started:
                t.stop()
            p.agent.stop()
            p.statsd.close()
            backend.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
