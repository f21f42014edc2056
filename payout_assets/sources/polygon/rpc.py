"""A polite JSON-RPC client for one Polygon provider.

* Calls travel as JSON-RPC batches (one POST, an array of requests); each element of the answer
  succeeds or fails on its own, so one refused range does not cost its neighbours.
* Every call counts against one request rate shared by every process on the host
  (``sources/rate.py``): a batch of k calls takes k of the allowance.
* Transient failures (429 with Retry-After, 5xx, timeouts, cut connections) are retried by
  tenacity with exponential backoff and full jitter, bounded in attempts and time; permanent
  ones fail at once with the fix.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from payout_assets.redact import redact
from payout_assets.sources.polygon.errors import (
    BatchRefusedError,
    PermanentRpcError,
    RangeTooLargeError,
    RpcError,
    TransientRpcError,
    classify_error,
)
from payout_assets.sources.polygon.events import CTF_ADDRESS, CTF_START_BLOCK
from payout_assets.sources.rate import shared_limiter
from payout_assets.sources.retry import RetryPolicy
from payout_assets.sources.tls import tls_context

Call = tuple[str, Sequence[Any]]

DEFAULT_MAX_RANGE = 10_000  # blocks per eth_getLogs: where the scan starts and grows back to
# calls per JSON-RPC batch: half a second's allowance at 10 calls/s, so one batch is answered and
# decoded while the next is on its way, and the first one fits beside the scan's opening calls
DEFAULT_BATCH_SIZE = 5
DEFAULT_FINALITY_DEPTH = 256  # head minus this when the node has no `finalized` tag


@dataclass(frozen=True)
class RpcSettings:
    url: str
    ctf_address: str = CTF_ADDRESS
    start_block: int = CTF_START_BLOCK
    max_rps: float = 10.0
    max_range: int = DEFAULT_MAX_RANGE
    batch_size: int = DEFAULT_BATCH_SIZE  # capped at max_rps: a batch never waits two windows
    finality_depth: int = DEFAULT_FINALITY_DEPTH
    timeout_s: float = 30.0
    max_attempts: int = 8
    max_retry_s: float = 300.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    rate_limit_db: str | None = None
    redis_url: str | None = field(default=None, repr=False)  # PAYOUT_REDIS_URL: may hold a password

    def __post_init__(self) -> None:
        if self.max_rps <= 0:
            raise ValueError(f"POLYGON_MAX_RPS must be positive, got {self.max_rps}")
        if self.max_range < 1 or self.batch_size < 1:
            raise ValueError("the block range and the batch size must be at least 1")

    @property
    def calls_per_batch(self) -> int:
        return max(1, min(self.batch_size, int(self.max_rps)))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class RpcClient:
    """A thread-safe client for one provider URL."""

    def __init__(
        self,
        settings: RpcSettings,
        log: logging.Logger | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.log = log or logging.getLogger(__name__)
        self._http = httpx.Client(
            timeout=httpx.Timeout(settings.timeout_s),
            verify=tls_context(),
            headers={"content-type": "application/json"},
            transport=transport,
        )
        self._limiter = shared_limiter(
            settings.url, settings.max_rps, settings.rate_limit_db, settings.redis_url
        )
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.requests_sent = 0  # calls, not POSTs: what the provider's rate limit counts
        self.retries = 0
        self._retry = RetryPolicy.of(
            "polygon", TransientRpcError, settings, self.log, on_retry=self._count_retry
        )

    def close(self) -> None:
        self._http.close()
        self._limiter.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- calls ------------------------------------------------------------------------------

    def call(self, method: str, *params: Any) -> Any:
        """One call; its error raised as the matching :class:`RpcError`."""
        (result,) = self.batch([(method, params)])
        return result_or_raise(result)

    def batch(self, calls: Sequence[Call]) -> list[Any]:
        """Each call's result, or its :class:`RpcError` in its place: an element that failed
        does not fail the others. Transient failures of the whole POST are retried."""
        if not calls:
            return []
        retrying = self._retry.retrying()
        started = time.monotonic()
        try:
            return retrying(self._post_batch, calls)
        except TransientRpcError as exc:
            raise TransientRpcError(
                f"{exc} (gave up after {time.monotonic() - started:.1f}s; limits: "
                f"max_attempts={self.settings.max_attempts}, "
                f"max_retry_s={self.settings.max_retry_s:g})",
                exc.retry_after_s,
            ) from exc

    def _post_batch(self, calls: Sequence[Call]) -> list[Any]:
        ids = [next(self._ids) for _ in calls]
        body = [
            {"jsonrpc": "2.0", "id": i, "method": method, "params": list(params)}
            for i, (method, params) in zip(ids, calls, strict=True)
        ]
        with self._lock:
            self._limiter.try_acquire("polygon", weight=len(calls), blocking=True)
            self.requests_sent += len(calls)
        try:
            response = self._http.post(self.settings.url, content=json.dumps(body).encode())
        except httpx.TimeoutException as exc:
            raise TransientRpcError(
                f"request timed out after {self.settings.timeout_s}s ({type(exc).__name__})"
            ) from None
        except httpx.UnsupportedProtocol as exc:
            raise PermanentRpcError(
                f"POLYGON_RPC_URL {redact(self.settings.url)!r} is not an http(s) URL: "
                f"{redact(str(exc))}"
            ) from None
        except httpx.RequestError as exc:
            raise TransientRpcError(f"connection failed: {type(exc).__name__}: {exc}") from None
        return self._answers(response, ids, [method for method, _ in calls])

    def _answers(self, response: httpx.Response, ids: list[int], methods: list[str]) -> list[Any]:
        status = response.status_code
        if status == 429:
            raise TransientRpcError("HTTP 429 Too Many Requests", _retry_after(response))
        if status == 413:
            # the provider refused the body or the answer's size: a range problem if the batch
            # reads logs, otherwise nothing a smaller request of the same kind would fix
            error = f"HTTP 413 from {redact(self.settings.url)}"
            if "eth_getLogs" in methods:
                return [BatchRefusedError(error)] * len(ids)
            raise PermanentRpcError(error)
        if status >= 500 or status == 408:
            raise TransientRpcError(f"HTTP {status}", _retry_after(response))
        if status in (401, 403):
            raise PermanentRpcError(
                f"HTTP {status}: {redact(self.settings.url)} refused the request; check the "
                "API key in POLYGON_RPC_URL"
            )
        if status >= 400:
            raise PermanentRpcError(f"HTTP {status} from {redact(self.settings.url)}")
        try:
            answer = response.json()
        except ValueError:
            raise TransientRpcError(f"answer is not JSON: {response.text[:80]!r}") from None
        if isinstance(answer, dict):  # some providers answer a refused batch with one error
            error = answer.get("error") or {}
            raise (
                classify_error(error, methods[0])
                if error
                else TransientRpcError(
                    f"answer to a batch is not a list: {json.dumps(answer)[:120]}"
                )
            )
        by_id = {item.get("id"): item for item in answer if isinstance(item, dict)}
        out: list[Any] = []
        for request_id, method in zip(ids, methods, strict=True):
            item = by_id.get(request_id)
            if item is None:
                raise TransientRpcError(f"the batch's answer has no element for {method}")
            if "error" in item:
                error = classify_error(item["error"] or {}, method)
                if isinstance(error, TransientRpcError):
                    raise error  # the whole batch again: its other answers are cheap to repeat
                out.append(error)
            else:
                out.append(item.get("result"))
        return out

    def _count_retry(self) -> None:
        self.retries += 1


def result_or_raise(result: Any) -> Any:
    if isinstance(result, RpcError):
        raise result
    return result


__all__ = [
    "RangeTooLargeError",
    "RpcClient",
    "RpcSettings",
    "result_or_raise",
]
