"""The HTTP side of the simulator: request parsing, graph-node's error shapes, the threaded server
and the handler that passes every request to the simulator."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Literal

from .config import (
    _MAX_BODY,
    _log,
)

if TYPE_CHECKING:
    from .server import Simulator


class _BadRequest(Exception):
    """A malformed HTTP request (answered with 400)."""


@dataclass(slots=True)
class _Answer:
    """What to send back for one GraphQL request, and what to log about it."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    mode: Literal["normal", "drop", "truncate_body", "truncate_connection"] = "normal"
    delay_s: float = 0.0
    reset: bool = False
    rows: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _errors_answer(*messages: str, status: int = 200) -> _Answer:
    return _Answer(
        status=status,
        body=_json_bytes({"errors": [{"message": m} for m in messages]}),
        errors=list(messages),
    )


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """Read the request body (Content-Length or chunked) so keep-alive stays in sync."""
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks: list[bytes] = []
        total = 0
        while True:
            line = handler.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _BadRequest("invalid chunked encoding") from None
            if size == 0:
                while handler.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > _MAX_BODY:
                raise _BadRequest("request body too large")
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline(1024)
    length = handler.headers.get("Content-Length")
    if length is None:
        return b""
    try:
        n = int(length)
    except ValueError:
        raise _BadRequest("invalid Content-Length") from None
    if n < 0 or n > _MAX_BODY:
        raise _BadRequest("request body too large")
    return handler.rfile.read(n)


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that remembers open connections so stop() can close them."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], app: Simulator) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "goldsky-simulator/1.0"
    sys_version = ""
    timeout = 120
    # Headers and body are separate writes; without TCP_NODELAY, Nagle plus delayed ACKs
    # add ~40 ms to every small keep-alive answer.
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:
        self.server.app.dispatch(self)

    def do_GET(self) -> None:
        self.server.app.dispatch(self)

    def do_DELETE(self) -> None:
        self.server.app.dispatch(self)

    def do_PUT(self) -> None:
        self.server.app.dispatch(self)

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s " + format, self.address_string(), *args)


def _send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    *,
    content_type: str = "application/json",
    headers: list[tuple[str, str]] | None = None,
    announce: int | None = None,
    close: bool = False,
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body) if announce is None else announce))
    for name, value in headers or ():
        handler.send_header(name, value)
    if close:
        handler.send_header("Connection", "close")
        handler.close_connection = True
    handler.end_headers()
    handler.wfile.write(body)


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    ok = address is not None and address.version == 4 and address.is_loopback
    if not ok:
        raise ValueError(f"the simulator only binds IPv4 loopback addresses, not {host!r}")


def _row_id(row: Any) -> str:
    if isinstance(row, dict):
        value = row.get("id")
        if isinstance(value, str):
            return value
    return ""
