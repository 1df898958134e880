"""gRPC responses stream (never buffered) and their gRPC status comes from the `grpc-status`
trailer, announced (`Trailer: Grpc-Status`) or not, or from a trailers-only response's header.

The backend is a raw HTTP/1.1 server that answers like a gRPC server does: 200, chunked body,
then the trailer. Each request gives one line: HTTP 200, status_source "grpc", `GrpcStatus` the
trailer's code, `dd.error` 1 only for the codes OpenTelemetry marks as server errors.
"""

from __future__ import annotations

import http.client
import socket
import threading
from dataclasses import dataclass

import pytest

from harness import DD_CONFIG, Route, Traefik


def _answer(path: str) -> bytes:
    head = "HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\nX-Backend: 1\r\n"
    if path.startswith("/grpc/announced/"):
        code = path.rsplit("/", 1)[1]
        return (head + "Trailer: Grpc-Status\r\nTransfer-Encoding: chunked\r\n\r\n"
                f"5\r\nhello\r\n0\r\nGrpc-Status: {code}\r\n\r\n").encode()
    if path.startswith("/grpc/unannounced/"):
        code = path.rsplit("/", 1)[1]
        return (head + "Transfer-Encoding: chunked\r\n\r\n"
                f"5\r\nhello\r\n0\r\nGrpc-Status: {code}\r\n\r\n").encode()
    if path.startswith("/grpc/trailers-only/"):
        code = path.rsplit("/", 1)[1]
        return (head + f"Grpc-Status: {code}\r\nContent-Length: 0\r\n\r\n").encode()
    return b"HTTP/1.1 200 OK\r\nX-Backend: 1\r\nContent-Length: 3\r\n\r\nok\n"


def _serve_conn(conn: socket.socket) -> None:
    buf = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            while len(buf) < length:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            buf = buf[length:]
            conn.sendall(_answer(path))


@dataclass
class GrpcLikeBackend:
    url: str
    sock: socket.socket

    @classmethod
    def start(cls) -> "GrpcLikeBackend":
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)

        def accept() -> None:
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    return
                threading.Thread(target=_serve_conn, args=(conn,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        return cls(f"http://127.0.0.1:{sock.getsockname()[1]}", sock)


@pytest.fixture(scope="module")
def traefik(tmp_path_factory, traefik_bin) -> Traefik:
    backend = GrpcLikeBackend.start()
    t = Traefik(tmp_path_factory.mktemp("grpc"), backend,  # type: ignore[arg-type]
                routes=[Route("web", ["dd"])], middlewares={"dd": dict(DD_CONFIG)}, binary=traefik_bin)
    t.start()
    yield t
    t.stop()
    backend.sock.close()


@pytest.mark.parametrize(
    ("path", "code", "error"),
    [
        ("/grpc/announced/0", 0, 0),
        ("/grpc/announced/14", 14, 1),
        ("/grpc/unannounced/5", 5, 0),
        ("/grpc/unannounced/13", 13, 1),
        ("/grpc/trailers-only/12", 12, 1),
    ],
)
def test_grpc_status_from_the_trailer(traefik: Traefik, path: str, code: int, error: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", traefik.port("web"), timeout=15)
    conn.request("POST", path, body=b"\x00\x00\x00\x00\x00",
                 headers={"Host": "grpc.test", "Content-Type": "application/grpc", "TE": "trailers"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status == 200
    assert body == (b"" if "trailers-only" in path else b"hello")
    recs = [r for r in traefik.wait_records([path], timeout=10) if r.data.get("RequestPath") == path]
    assert len(recs) == 1, [r.text for r in recs]
    d = recs[0].data
    assert (d["DownstreamStatus"], d["status_source"], d["GrpcStatus"], d["dd.error"]) == (200, "grpc", code, error)
