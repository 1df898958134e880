"""A permissive HTTP/1.x backend for the header sweeps: it takes any request head Traefik
forwards (no header count or line limit below 8 MiB, any method, any bytes) and answers
200 with ``X-Backend: 1`` and the body ``ok\\n``, closing the connection. The aiohttp backend
refuses more than ~100 headers or an 8 KiB line itself, which would hide what Traefik and the
plugin do with larger requests.

Runs in the test process: ``with RawBackend() as b: ... b.url``. Each request's target is
remembered in ``b.targets`` (its first KEPT_TARGET bytes, before the answer is sent) so a test
can tell "Traefik refused it" from "it reached the backend".
"""

from __future__ import annotations

import socket
import threading
from typing import Any

MAX_HEAD = 8 << 20
# The start of a target kept in ``targets``: enough for any test's unique prefix; a 1 MiB path
# is not kept whole for each of thousands of requests.
KEPT_TARGET = 4096
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
        # Each kept target's full length.
        self.lengths: dict[bytes, int] = {}
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
            head = bytearray()
            try:
                # Looks for the blank line only where a chunk could have completed it: heads of
                # 1 MiB under 64 concurrent requests stay cheap.
                while len(head) < MAX_HEAD:
                    chunk = conn.recv(1 << 16)
                    if not chunk:
                        return
                    head += chunk
                    if head.find(b"\r\n\r\n", max(0, len(head) - len(chunk) - 3)) >= 0:
                        break
                # The target: between the first two spaces (the method may be 1 MiB long).
                sp1 = head.find(b" ")
                sp2 = head.find(b" ", sp1 + 1) if sp1 >= 0 else -1
                target = bytes(head[sp1 + 1:min(sp2, sp1 + 1 + KEPT_TARGET)]) if sp2 >= 0 else b""
                with self._lock:
                    self.targets.add(target)
                    self.lengths[target] = sp2 - sp1 - 1 if sp2 >= 0 else 0
                conn.sendall(RESPONSE)
            except OSError:
                return

    def seen(self) -> dict[bytes, int]:
        """The targets noted so far (their first KEPT_TARGET bytes), with their full lengths."""
        with self._lock:
            return dict(self.lengths)

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
