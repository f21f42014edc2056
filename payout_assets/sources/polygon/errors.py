"""What can go wrong talking to a Polygon JSON-RPC provider, split by what to do about it.

The shapes are the providers' own: range and result caps come back as JSON-RPC errors -32005
("query returned more than 10000 results"), -32602 ("block range ... exceeds limit"), -32000
("exceed maximum block range") or as HTTP 413; rate limits as HTTP 429 (with Retry-After) or
-32005 "limit exceeded"; overload as 5xx.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


class RpcError(RuntimeError):
    """Base class of the provider's failures."""


class TransientRpcError(RpcError):
    """Worth retrying: rate limits, overload, timeouts, 5xx, cut connections, bad bodies."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RangeTooLargeError(RpcError):
    """The provider refused an ``eth_getLogs`` range: too many blocks or too many results.
    Not retried as is: the scan halves the range."""


class BatchRefusedError(RangeTooLargeError):
    """HTTP 413: the provider refused the whole batch (its widest range, or the answer's size)
    without saying which element; no element was answered."""


class PermanentRpcError(RpcError):
    """Retrying cannot help: wrong chain, no contract, method not supported, bad request."""


class MethodNotSupportedError(PermanentRpcError):
    """JSON-RPC -32601: the provider does not serve the method at all."""


_RANGE = re.compile(
    r"block range|range (is )?too (large|wide|big)|exceed(s|ed)? (the )?maximum block range"
    r"|more than \d+ results|too many (results|logs)|response size|query timeout|limit of \d+",
    re.IGNORECASE,
)
_RATE = re.compile(r"rate limit|too many requests|limit exceeded|capacity", re.IGNORECASE)


def classify_error(error: Mapping[str, Any], method: str) -> RpcError:
    """A JSON-RPC ``error`` object as the exception that says what to do."""
    code = error.get("code")
    message = str(error.get("message", ""))
    text = f"{method}: {code} {message}".strip()
    if method == "eth_getLogs" and _RANGE.search(message):
        return RangeTooLargeError(text)
    if _RATE.search(message) or code == 429:
        return TransientRpcError(text)
    if code == -32601:
        return MethodNotSupportedError(
            f"{text}: the provider does not support {method}; use another"
        )
    if code in (-32600, -32602):
        return PermanentRpcError(f"{text}: the provider refused the request as invalid")
    # -32000 and the server-defined range (-32099..-32000) cover overload, missing headers of
    # fresh blocks and internal errors: worth a bounded retry
    return TransientRpcError(text)
