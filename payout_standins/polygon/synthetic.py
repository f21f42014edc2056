"""A synthetic Polygon for the benchmark: millions of blocks that anvil could not mine in time.

A JSON-RPC server on 127.0.0.1 answering what the chain scan asks (``eth_chainId``,
``eth_getCode``, ``eth_blockNumber``, ``eth_getBlockByNumber``, ``eth_getLogs``, in batches)
over a deterministic chain of ``blocks`` blocks holding ``resolutions`` ConditionResolution logs,
with a provider's limits: ``max_range`` blocks and ``max_results`` logs per ``eth_getLogs``
(Infura's -32005 shape) and a server-side rate limit of ``max_rps`` calls per second (429 with
Retry-After). It records every range it served, so the benchmark can show none was read twice.
The tests use anvil (``chain.py``): a real EVM, where this is a model of one.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from payout_standins.goldsky.faults import RateLimiter
from payout_standins.polygon.abi import encode
from payout_standins.polygon.chain import CHAIN_ID, CTF_ADDRESS

TOPIC = "0xb44d84d3289691f71497564b85d4233648d9dbae8cbdbb4329f301c3a0185894"
GENESIS_TIME = 1_600_000_000


def _hash(text: str) -> str:
    return "0x" + hashlib.sha256(text.encode()).hexdigest()


@dataclass
class SyntheticRules:
    blocks: int = 1_000_000
    resolutions: int = 100_000
    max_range: int = 10_000
    max_results: int = 10_000
    max_rps: float = 10.0
    seed: int = 1


class SyntheticChain:
    def __init__(self, rules: SyntheticRules) -> None:
        self.rules = rules
        step = rules.blocks / max(1, rules.resolutions)
        # resolution i sits in block floor(i * step) + 1: spread evenly over the chain
        self.log_blocks = [int(i * step) + 1 for i in range(rules.resolutions)]
        self.ranges_served: list[tuple[int, int]] = []
        self.calls = 0
        self.refused_429 = 0
        self._limit = RateLimiter(max(1, int(rules.max_rps)), 1.0)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> SyntheticChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def head(self) -> int:
        """A chain of ``blocks`` blocks: 0 .. blocks - 1."""
        return self.rules.blocks - 1

    def condition_id(self, i: int) -> str:
        return hashlib.sha256(f"synthetic-condition:{self.rules.seed}:{i}".encode()).hexdigest()

    def payouts(self, i: int) -> list[int]:
        return [[1, 0], [0, 1], [1, 1], [0, 0, 1]][i % 4]

    def _log(self, i: int) -> dict[str, Any]:
        block = self.log_blocks[i]
        payouts = self.payouts(i)
        return {
            "address": CTF_ADDRESS.lower(),
            "topics": [
                TOPIC,
                "0x" + self.condition_id(i),
                "0x" + "0" * 24 + "11" * 20,
                _hash(f"q{i}"),
            ],
            "data": "0x" + encode(len(payouts), payouts).hex(),
            "blockNumber": hex(block),
            "blockHash": _hash(f"block:{block}"),
            "blockTimestamp": hex(GENESIS_TIME + 2 * block),
            "transactionHash": _hash(f"tx:{i}"),
            "transactionIndex": "0x0",
            "logIndex": hex(i % 7),
            "removed": False,
        }

    def _block(self, number: int) -> dict[str, Any]:
        return {
            "number": hex(number),
            "hash": _hash(f"block:{number}"),
            "timestamp": hex(GENESIS_TIME + 2 * number),
        }

    def _admit(self, calls: int) -> bool:
        """The server's own rate limit: at most max_rps calls in any one-second window."""
        if not self._limit.allow(weight=calls):
            with self._lock:
                self.refused_429 += 1
            return False
        with self._lock:
            self.calls += calls
        return True

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        method, params = request.get("method"), request.get("params") or []
        out: dict[str, Any] = {"jsonrpc": "2.0", "id": request.get("id")}
        if method == "eth_chainId":
            out["result"] = hex(CHAIN_ID)
        elif method == "eth_getCode":
            out["result"] = "0x6080604052"
        elif method == "eth_blockNumber":
            out["result"] = hex(self.head)
        elif method == "eth_getBlockByNumber":
            tag = params[0]
            number = self.head if tag in ("latest", "finalized", "safe") else int(tag, 16)
            out["result"] = self._block(number) if number <= self.head else None
        elif method == "eth_getLogs":
            first, last = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
            lo = bisect.bisect_left(self.log_blocks, first)
            hi = bisect.bisect_right(self.log_blocks, last)
            if last - first + 1 > self.rules.max_range or hi - lo > self.rules.max_results:
                limit = self.rules.max_results
                out["error"] = {
                    "code": -32005,
                    "message": f"query returned more than {limit} results",
                }
            else:
                with self._lock:
                    self.ranges_served.append((first, last))
                out["result"] = [self._log(i) for i in range(lo, hi)]
        else:
            out["error"] = {"code": -32601, "message": f"the method {method} does not exist"}
        return out

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        chain = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                requests = body if isinstance(body, list) else [body]
                if not chain._admit(len(requests)):
                    payload, status = b'{"message":"Too Many Requests"}', 429
                else:
                    answers = [chain.answer(r) for r in requests]
                    payload = json.dumps(answers if isinstance(body, list) else answers[0]).encode()
                    status = 200
                self.send_response(status)
                self.send_header("content-type", "application/json")
                if status == 429:
                    self.send_header("retry-after", "1")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler
