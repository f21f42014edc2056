"""A Polygon provider's limits in front of a node: an HTTP JSON-RPC proxy on 127.0.0.1.

Real providers cap ``eth_getLogs`` by block range and by result count, rate-limit, and fail
now and then; each says so in its own shape. This proxy forwards to an upstream node (anvil)
and plays those answers, per element of a batch, so the product's client meets them offline:

* ``range``: a request wider than ``max_range`` blocks gets the chosen provider's error;
* ``results``: an answer of more than ``max_results`` logs gets it too;
* ``faults``: the n-th POSTs answer 429 (with Retry-After) or 503 instead;
* ``log``: every eth_getLogs range that reached the node, to prove none was read twice.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

# (code, message) per provider style: the shapes providers answer with (see
# shared/research/polygon-payouts.md)
RANGE_ERRORS: Mapping[str, tuple[int, str]] = {
    "infura": (-32005, "query returned more than 10000 results"),
    "alchemy": (-32602, "Log response size exceeded. block range exceeds limit of {max_range}"),
    "quicknode": (-32000, "exceed maximum block range: {max_range}"),
}
RESULT_ERRORS: Mapping[str, tuple[int, str]] = {
    "infura": (-32005, "query returned more than {max_results} results"),
    "alchemy": (-32602, "query returned more than {max_results} results"),
    "quicknode": (-32000, "query returned more than {max_results} results"),
}


@dataclass
class ProviderRules:
    max_range: int = 10_000
    max_results: int = 10_000
    style: str = "infura"  # infura | alchemy | quicknode | http413
    faults: dict[int, int] = field(default_factory=dict)  # POST number (1-based) -> HTTP status
    retry_after_s: float = 0.2
    fail_element: set[int] = field(default_factory=set)  # getLogs call numbers answered -32000


class ProviderProxy:
    """Forwards JSON-RPC to ``upstream`` under ``rules``; ``stop()`` ends it."""

    def __init__(self, upstream: str, rules: ProviderRules | None = None) -> None:
        self.upstream = upstream
        self.rules = rules or ProviderRules()
        self.posts = 0
        self.getlogs_calls = 0
        self.ranges_served: list[tuple[int, int]] = []  # eth_getLogs ranges the node answered
        self.calls: list[str] = []  # every method, in order
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=30.0)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._http.close()

    def __enter__(self) -> ProviderProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- answering ----------------------------------------------------------------------------

    def _error(self, request: Mapping[str, Any], code: int, message: str) -> dict[str, Any]:
        return {
            "jsonrpc": "2.0",
            "id": request.get("id"),
            "error": {"code": code, "message": message},
        }

    def _range_error(
        self, request: Mapping[str, Any], table: Mapping[str, tuple[int, str]]
    ) -> dict[str, Any]:
        code, message = table.get(self.rules.style, table["infura"])
        text = message.format(max_range=self.rules.max_range, max_results=self.rules.max_results)
        return self._error(request, code, text)

    def answer_one(self, request: Mapping[str, Any]) -> dict[str, Any]:
        method = str(request.get("method"))
        with self._lock:
            self.calls.append(method)
        if method != "eth_getLogs":
            return self._forward(request)
        with self._lock:
            self.getlogs_calls += 1
            number = self.getlogs_calls
        if number in self.rules.fail_element:
            return self._error(request, -32000, "internal error: upstream timeout")
        query = (request.get("params") or [{}])[0]
        first, last = int(query["fromBlock"], 16), int(query["toBlock"], 16)
        if last - first + 1 > self.rules.max_range:
            return self._range_error(request, RANGE_ERRORS)
        answer = self._forward(request)
        if len(answer.get("result") or []) > self.rules.max_results:
            return self._range_error(request, RESULT_ERRORS)
        with self._lock:
            self.ranges_served.append((first, last))
        return answer

    def _forward(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self._http.post(self.upstream, json=request).json())

    def _too_large(self, body: Any) -> bool:
        if self.rules.style != "http413":
            return False
        requests = body if isinstance(body, list) else [body]
        for request in requests:
            if request.get("method") == "eth_getLogs":
                query = request["params"][0]
                if (
                    int(query["toBlock"], 16) - int(query["fromBlock"], 16) + 1
                    > self.rules.max_range
                ):
                    return True
        return False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                return

            def _send(self, status: int, body: bytes, headers: Mapping[str, str] = {}) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                with proxy._lock:
                    proxy.posts += 1
                    fault = proxy.rules.faults.get(proxy.posts)
                if fault == 429:
                    retry = {"retry-after": f"{proxy.rules.retry_after_s:g}"}
                    self._send(429, b'{"message":"Too Many Requests"}', retry)
                    return
                if fault:
                    self._send(fault, b"upstream unavailable")
                    return
                if proxy._too_large(body):
                    self._send(413, b"Request Entity Too Large")
                    return
                if isinstance(body, list):
                    answer: Any = [proxy.answer_one(request) for request in body]
                else:
                    answer = proxy.answer_one(body)
                self._send(200, json.dumps(answer).encode())

        return Handler
