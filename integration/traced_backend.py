"""A backend instrumented with the official Datadog Python tracer (ddtrace), for the propagation tests.

Run as a subprocess: ``python traced_backend.py [--port N]`` with the tracer configured from the
environment (``TracedBackend`` below sets it). It binds 127.0.0.1 (port 0 = any free port) and prints
one line ``READY <port>`` on stdout once it accepts connections.

The server is aiohttp traced by ddtrace's own aiohttp server integration
(``ddtrace.contrib.aiohttp.trace_app``): the tracer extracts the incoming context in the style(s) of
``DD_TRACE_PROPAGATION_STYLE`` and opens one ``aiohttp.request`` span per request (service
``DD_SERVICE``), reported to ``DD_TRACE_AGENT_URL``. Nothing here builds a span by hand.

Every request (any method, path, host) is answered with ``X-Backend: 1`` (the harness's readiness
probe needs it), status ``?status=<code>`` (default 200), and a JSON body:

    {"method": ..., "path": ...,
     "headers": {<every trace-context header received, lowercase name -> value>},
     "span": {"trace_id": <low 64 bits>, "trace_id_128": "<32 hex>", "span_id": ...,
              "parent_id": ..., "sampling_priority": ..., "origin": ...}}

``span`` is the backend's own ``aiohttp.request`` span as the tracer sees it while handling the request.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# Quiet: the tracer logs at WARNING and above only; aiohttp's access log is off.
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

TRACE_HEADERS = (
    "x-datadog-trace-id", "x-datadog-parent-id", "x-datadog-sampling-priority", "x-datadog-origin",
    "x-datadog-tags", "traceparent", "tracestate", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid",
    "x-b3-sampled", "x-b3-flags", "b3",
)


def make_app() -> Any:
    import ddtrace

    # The documented way: patch(aiohttp=True) registers the integration (its settings, the client
    # side), trace_app() adds the server middleware.
    ddtrace.patch(aiohttp=True)
    from aiohttp import web
    from ddtrace.contrib.aiohttp import trace_app
    from ddtrace.trace import tracer

    async def handle(request: web.Request) -> web.Response:
        span = tracer.current_span()
        ctx = span.context if span is not None else None
        info: dict[str, Any] = {"method": request.method, "path": request.path,
                                "headers": {h: request.headers[h] for h in TRACE_HEADERS if h in request.headers},
                                "span": None}
        if span is not None and ctx is not None:
            info["span"] = {
                "trace_id": span.trace_id & 0xFFFF_FFFF_FFFF_FFFF,
                "trace_id_128": f"{span.trace_id:032x}",
                "span_id": span.span_id,
                "parent_id": span.parent_id or 0,
                "sampling_priority": ctx.sampling_priority,
                "origin": ctx.dd_origin,
            }
        status = int(request.query.get("status") or 200)
        if request.method == "HEAD" or status in (204, 304):
            return web.Response(status=status, headers={"X-Backend": "1"})
        return web.json_response(info, status=status, headers={"X-Backend": "1"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    trace_app(app, service=os.environ.get("DD_SERVICE", "backend"))
    return app


async def serve(port: int) -> None:
    # Imported here, after ddtrace is set up, like aiohttp itself.
    from backend import serve_app

    await serve_app(make_app(), port)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    try:
        asyncio.run(serve(args.port))
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        from ddtrace.trace import tracer

        tracer.flush()  # what is still buffered goes out before exit


# --------------------------------------------------------------------------------- test side --

# ddtrace's name for B3 multi-header is `b3multi` (its `b3` is the single `b3` header); the
# plugin's `b3` is the multi-header style. `default`: ddtrace's own default (datadog,tracecontext,baggage).
DDTRACE_STYLE = {"datadog": "datadog", "tracecontext": "tracecontext", "b3": "b3multi", "default": None}


class TracedBackend:
    """traced_backend.py as a subprocess reporting to ``agent_url``, extracting/injecting ``style``
    (a plugin style name: datadog, tracecontext, b3; or `default`, ddtrace's default). Usable as the harness's Traefik backend."""

    def __init__(self, log_path: Path, agent_url: str, style: str, service: str = "backend"):
        self.log_path = log_path
        self.style = style
        self.service = service
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "OTEL_", "_DD_"))}
        env.update({
            "DD_TRACE_AGENT_URL": agent_url,
            "DD_SERVICE": service,
            "DD_ENV": "test",
            "DD_TRACE_WRITER_INTERVAL_SECONDS": "0.2",
            "DD_TRACE_STATS_COMPUTATION_ENABLED": "false",  # send every span, priority <= 0 too
            "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
            "DD_REMOTE_CONFIGURATION_ENABLED": "false",
            "DD_TRACE_STARTUP_LOGS": "false",
            "DD_DATA_STREAMS_ENABLED": "false",
            "DD_PROFILING_ENABLED": "false",
            "DD_APPSEC_ENABLED": "false",
            "DD_RUNTIME_METRICS_ENABLED": "false",
            "DD_TRACE_API_VERSION": "v0.4",
        })
        if DDTRACE_STYLE[style] is not None:
            env["DD_TRACE_PROPAGATION_STYLE"] = DDTRACE_STYLE[style]
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--port", "0"],
            stdout=subprocess.PIPE, stderr=self._log, text=True, env=env, start_new_session=True,
        )
        from harness import read_ready_line  # the test process only, not the server

        line = read_ready_line(self.proc, 30)
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"traced backend did not start (got {line!r}); log: {log_path.read_text()[-2000:]}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        from harness import stop_process

        stop_process(self.proc)
        self._log.close()


if __name__ == "__main__":
    main()
