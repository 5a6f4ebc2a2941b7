"""A fault-injecting HTTP proxy on 127.0.0.1 for the client tests: a real socket server between a
client (`send`, `LoglakeHandler`) and a real `loglake serve`.

Each request is passed to the server whole and its answer read whole, so the server has processed
it; then `mode` decides what the client gets: `pass` (the answer), `drop` (the connection closed
without an answer: a lost answer), `reset` (a TCP reset instead of the answer) or `delay` (the
answer after `delay` seconds). TLS is terminated on both sides (the test's certificates), so the
client still speaks HTTPS and the proxy still sees the HTTP messages.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from pathlib import Path


def _read_message(sock: socket.socket, buf: bytes) -> tuple[bytes, bytes] | None:
    """One HTTP/1.1 message (Content-Length framed, as urllib and uvicorn send them) and what follows."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return None
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        data = sock.recv(65536)
        if not data:
            return None
        rest += data
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


class FaultProxy:
    def __init__(self, upstream_port: int, certs: dict[str, Path]) -> None:
        self.upstream_port = upstream_port
        self.mode, self.delay = "pass", 0.0
        self.counts = {"requests": 0, "passed": 0, "dropped": 0, "reset": 0, "delayed": 0}
        self.bodies: list[bytes] = []  # what reached the server, in order
        self.server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_ctx.load_cert_chain(certs["server_cert"], certs["server_key"])
        self.client_ctx = ssl.create_default_context(cafile=str(certs["ca"]))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}/v1/logs"
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self.listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            conn = self.server_ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        try:
            buf = b""
            while True:
                got = _read_message(conn, buf)
                if got is None:
                    return
                request, buf = got
                answer = self._forward(request)
                if not self._answer(conn, raw, answer):
                    return
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()

    def _forward(self, request: bytes) -> bytes:
        up_raw = socket.create_connection(("127.0.0.1", self.upstream_port))
        with up_raw, self.client_ctx.wrap_socket(up_raw, server_hostname="127.0.0.1") as up:
            up.sendall(request)
            got = _read_message(up, b"")
        with self._lock:
            self.counts["requests"] += 1
            self.bodies.append(request.split(b"\r\n\r\n", 1)[1])
        return got[0] if got else b""

    def _answer(self, conn: ssl.SSLSocket, raw: socket.socket, answer: bytes) -> bool:
        """Apply the mode to one answer; False when the connection is gone."""
        mode = self.mode
        with self._lock:
            self.counts[{"pass": "passed", "drop": "dropped", "reset": "reset", "delay": "delayed"}[mode]] += 1
        if mode == "drop" or not answer:
            return False
        if mode == "reset":
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if mode == "delay":
            time.sleep(self.delay)
        conn.sendall(answer)
        return True
