"""Reads the plugin's FIFO like the relay does, without the relay: splits the byte stream into
frames by their 6-byte header (``TD``, version, flags, body length u16 LE) and keeps them, so a
test can count frames per request and check their sizes. The FIFO is opened read-write, so it
never reports end-of-file while writers come and go.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

HEADER_LEN = 6
MAX_FRAME = 4096


class FifoFrames:
    def __init__(self, path: Path) -> None:
        os.mkfifo(path, 0o600)
        self.path = path
        self.fd = os.open(path, os.O_RDWR)
        self.frames: list[bytes] = []
        self.garbage = 0
        self._buf = b""
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                return
            with self._lock:
                self._buf += chunk
                self._split()

    def _split(self) -> None:
        while len(self._buf) >= HEADER_LEN:
            if self._buf[:2] != b"TD":
                self.garbage += 1
                self._buf = self._buf[1:]
                continue
            body = int.from_bytes(self._buf[4:6], "little")
            if len(self._buf) < HEADER_LEN + body:
                return
            self.frames.append(self._buf[: HEADER_LEN + body])
            self._buf = self._buf[HEADER_LEN + body :]

    def by_id(self, pattern: re.Pattern[bytes]) -> dict[str, list[bytes]]:
        """Frames grouped by the first match of ``pattern`` (group 1) in their bytes."""
        out: dict[str, list[bytes]] = {}
        with self._lock:
            frames = list(self.frames)
        for f in frames:
            m = pattern.search(f)
            if m:
                out.setdefault(m.group(1).decode(), []).append(f)
        return out

    def wait(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.frames) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop = True
        # Unblocks the reader: a write to our own read-write descriptor.
        os.write(self.fd, b"\0")
        self._thread.join(2)
        os.close(self.fd)
