"""A permissive HTTP/1.x backend for the header sweeps: it takes any request head Traefik
forwards (no header count or line limit below 8 MiB, any method, any bytes) and answers
200 with ``X-Backend: 1`` and the body ``ok\\n``, closing the connection. The aiohttp backend
refuses more than ~100 headers or an 8 KiB line itself, which would hide what Traefik and the
plugin do with larger requests.

Runs in the test process: ``with RawBackend() as b: ... b.url``. Each request's target is
remembered in ``b.targets`` (before the answer is sent) so a test can tell "Traefik refused it"
from "it reached the backend".
"""

from __future__ import annotations

import socket
import threading
from typing import Any

MAX_HEAD = 8 << 20
BODY = b"ok\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nX-Backend: 1\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
    len(BODY),
    BODY,
)


class RawBackend:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.targets: set[bytes] = set()
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            head = b""
            try:
                while b"\r\n\r\n" not in head and len(head) < MAX_HEAD:
                    chunk = conn.recv(1 << 16)
                    if not chunk:
                        return
                    head += chunk
                parts = head.split(b" ", 2)
                with self._lock:
                    self.targets.add(parts[1] if len(parts) > 2 else b"")
                conn.sendall(RESPONSE)
            except OSError:
                return

    def reached(self, prefix: bytes) -> bool:
        with self._lock:
            return any(t.startswith(prefix) for t in self.targets)

    def stop(self) -> None:
        self._stop = True
        self.sock.close()

    def __enter__(self) -> "RawBackend":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
