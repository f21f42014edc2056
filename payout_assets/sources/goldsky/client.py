"""The Goldsky / graph-node client: exact, polite, and loud when it cannot do its job.

* Queries (``documents.py``) are validated against the subgraph's schema when the client is
  built. Ids travel as GraphQL variables and every batch query sets ``first`` to the batch size
  (≤ 1000).
* Every request has a timeout. Transient failures are retried by tenacity with exponential
  backoff and full jitter, bounded in attempts and total time, honouring ``Retry-After``.
* One request rate for every process on the host (``rate.py``).
* An answer is checked before it is trusted (``answers.py``): only ids that were asked for, none
  twice, never more rows than ``first``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from gql import GraphQLRequest

from payout_assets.redact import redact
from payout_assets.sources.goldsky import documents
from payout_assets.sources.goldsky.answers import classify, raw_condition
from payout_assets.sources.goldsky.documents import MAX_FIRST, Dialect
from payout_assets.sources.goldsky.errors import (
    GoldskyError,
    PermanentGoldskyError,
    ResponseIntegrityError,
    TransientGoldskyError,
)
from payout_assets.sources.rate import shared_limiter
from payout_assets.sources.retry import RetryPolicy
from payout_assets.sources.tls import tls_context
from payout_assets.validate.ids import InvalidId, from_subgraph_id, to_subgraph_id
from payout_assets.validate.payouts import RawCondition


@dataclass(frozen=True)
class SubgraphMeta:
    block_number: int
    block_hash: str
    block_timestamp: int | None
    deployment: str
    has_indexing_errors: bool


def request_headers(api_key: str | None, headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of every request to the subgraph: JSON, the extra headers, the bearer key.
    One place, so the client, preflight and the settings check authenticate alike."""
    out = {"content-type": "application/json", **dict(headers)}
    if api_key:
        out["authorization"] = f"Bearer {api_key}"
    return out


@dataclass(frozen=True)
class ClientSettings:
    endpoint: str
    dialect: Dialect = Dialect.PNL
    max_rps: float = 10.0
    concurrency: int = 8
    batch_size: int = MAX_FIRST
    timeout_s: float = 30.0
    max_attempts: int = 8
    max_retry_s: float = 300.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    # Secrets: kept out of repr() so that logging the settings (or an error that embeds them)
    # can never print a key or an authorization header.
    api_key: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    rate_limit_db: str | None = None
    redis_url: str | None = field(default=None, repr=False)  # PAYOUT_REDIS_URL: may hold a password

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_FIRST:
            raise ValueError(
                f"batch size must be 1..{MAX_FIRST} (graph-node's cap), got {self.batch_size}"
            )
        if self.max_rps <= 0:
            raise ValueError(f"GOLDSKY_MAX_RPS must be positive, got {self.max_rps}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")

    @property
    def chunk_ids(self) -> int:
        """Ids a shard reads per chunk of its id list: enough for every request in flight."""
        return self.batch_size * self.concurrency

    def secret_values(self) -> list[str]:
        """The literal values an error message must not repeat: the API key and header values
        (a URL's password is masked by ``redact`` wherever it appears)."""
        values = [self.api_key or "", *self.headers.values()]
        return [str(v) for v in values if len(str(v)) >= 4]


class GoldskyClient:
    """A thread-safe client for one endpoint; share it between a shard's fetch threads."""

    def __init__(
        self,
        settings: ClientSettings,
        log: logging.Logger | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``transport`` is httpx's seam: None sends over the network; the unit tests pass an
        ``httpx.MockTransport`` to play the endpoint's answers."""
        self.settings = settings
        self.log = log or logging.getLogger(__name__)
        self._payouts_doc = documents.document(
            "payouts_pnl" if settings.dialect is Dialect.PNL else "payouts_legacy", settings.dialect
        )
        self._meta_doc = documents.document("meta", settings.dialect)
        self._changed_doc = documents.document("changed_since", settings.dialect)
        self._http = httpx.Client(
            timeout=httpx.Timeout(settings.timeout_s),
            verify=tls_context(),
            headers=request_headers(settings.api_key, settings.headers),
            limits=httpx.Limits(max_connections=settings.concurrency + 2),
            transport=transport,
        )
        self._limiter = shared_limiter(
            settings.endpoint, settings.max_rps, settings.rate_limit_db, settings.redis_url
        )
        self._limiter_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._cancelled = threading.Event()
        self.requests_sent = 0
        self.retries = 0
        self._retry = RetryPolicy.of(
            "goldsky",
            TransientGoldskyError,
            settings,
            self.log,
            sleep=self._sleep,
            on_retry=self._count_retry,
        )

    def cancel(self) -> None:
        """Stop every request of this client soon: queued attempts and backoff sleeps end with a
        :class:`GoldskyError`, so a failing shard does not wait for its siblings' retries."""
        self._cancelled.set()

    def _sleep(self, seconds: float) -> None:
        if self._cancelled.wait(seconds):
            raise GoldskyError("cancelled: another batch of this shard failed")

    def close(self) -> None:
        self._http.close()
        self._limiter.close()

    def __enter__(self) -> GoldskyClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- public operations --------------------------------------------------------------------

    def meta(self) -> SubgraphMeta:
        data = self._execute(self._meta_doc, {})
        meta = data.get("_meta") or {}
        block = meta.get("block") or {}
        try:
            return SubgraphMeta(
                block_number=int(block["number"]),
                block_hash=str(block.get("hash") or ""),
                block_timestamp=int(block["timestamp"]) if block.get("timestamp") else None,
                deployment=str(meta.get("deployment") or ""),
                has_indexing_errors=bool(meta.get("hasIndexingErrors")),
            )
        except (KeyError, TypeError, ValueError):
            raise PermanentGoldskyError(
                f"_meta answer is malformed: {json.dumps(meta)[:200]}"
            ) from None

    def fetch_payouts(self, condition_ids: Sequence[str], block: int | None) -> list[RawCondition]:
        """The conditions among ``condition_ids`` that the subgraph knows, as of ``block``.

        Ids absent from the answer are not in the subgraph. The answer is checked: ids that were
        not asked for, an id twice, or more rows than ``first`` raise (and are retried).
        """
        if not 0 < len(condition_ids) <= self.settings.batch_size:
            raise ValueError(
                f"a batch holds 1..{self.settings.batch_size} ids, got {len(condition_ids)}"
            )
        variables: dict[str, Any] = {
            "ids": [to_subgraph_id(c) for c in condition_ids],
            "first": len(condition_ids),
            "block": {"number": block} if block is not None else None,
        }
        asked = set(condition_ids)

        def parse(data: Mapping[str, Any]) -> list[RawCondition]:
            rows = data.get("conditions")
            if not isinstance(rows, list):
                raise ResponseIntegrityError(
                    "answer has no `conditions` list", condition_ids=condition_ids
                )
            if len(rows) > len(condition_ids):
                raise ResponseIntegrityError(
                    f"answer has {len(rows)} rows for first={len(condition_ids)}",
                    condition_ids=condition_ids,
                )
            seen: set[str] = set()
            out: list[RawCondition] = []
            for row in rows:
                if not isinstance(row, dict):
                    raise ResponseIntegrityError(
                        f"answer contains a row that is not an object: {json.dumps(row)[:80]}",
                        condition_ids=condition_ids,
                    )
                cid = from_subgraph_id(str(row.get("id", "")))
                if isinstance(cid, InvalidId) or cid not in asked:
                    raise ResponseIntegrityError(
                        f"answer contains id {row.get('id')!r} that was not asked for",
                        condition_ids=condition_ids,
                    )
                if cid in seen:
                    raise ResponseIntegrityError(
                        f"answer contains id {row.get('id')!r} twice", condition_ids=condition_ids
                    )
                seen.add(cid)
                out.append(raw_condition(cid, row, condition_ids))
            return out

        return self._execute(self._payouts_doc, variables, parse=parse, condition_ids=condition_ids)

    def changed_since(
        self, since_block: int, block: int | None, page_size: int = MAX_FIRST
    ) -> Iterator[str]:
        """Ids of every condition changed at or after ``since_block``, paged by id cursor."""
        after = "0x"
        while True:
            variables = {
                "first": page_size,
                "after": after,
                "since": since_block,
                "block": {"number": block} if block is not None else None,
            }
            rows = self._execute(self._changed_doc, variables).get("conditions") or []
            if len(rows) > page_size:
                raise ResponseIntegrityError(f"answer has {len(rows)} rows for first={page_size}")
            for row in rows:
                cid = from_subgraph_id(str(row.get("id", "")))
                if isinstance(cid, InvalidId):
                    raise ResponseIntegrityError(f"answer contains malformed id {row.get('id')!r}")
                yield cid
            if len(rows) < page_size:
                return
            next_after = str(rows[-1]["id"])
            if next_after <= after:
                raise ResponseIntegrityError(
                    "id cursor did not advance; the endpoint ignores orderBy"
                )
            after = next_after

    # -- transport ----------------------------------------------------------------------------

    def _execute(
        self,
        document: Any,
        variables: Mapping[str, Any],
        parse: Any = None,
        condition_ids: Sequence[str] = (),
    ) -> Any:
        payload = GraphQLRequest(document, variable_values=dict(variables)).payload
        body = json.dumps(payload).encode()
        attempts = 0

        def attempt() -> Any:
            nonlocal attempts
            attempts += 1
            data = self._post(body, condition_ids)
            return parse(data) if parse is not None else data

        retrying = self._retry.retrying()
        started = time.monotonic()
        try:
            return retrying(attempt)
        except TransientGoldskyError as exc:
            raise type(exc)(
                f"{exc} (gave up after {attempts} attempt{'s' if attempts != 1 else ''} in "
                f"{time.monotonic() - started:.1f}s; limits: max_attempts="
                f"{self.settings.max_attempts}, max_retry_s={self.settings.max_retry_s:g})",
                retry_after_s=exc.retry_after_s,
                condition_ids=condition_ids or exc.condition_ids,
            ) from exc

    def _count_retry(self) -> None:
        with self._stats_lock:
            self.retries += 1

    def _post(self, body: bytes, condition_ids: Sequence[str]) -> Mapping[str, Any]:
        if self._cancelled.is_set():
            raise GoldskyError("cancelled: another batch of this shard failed", condition_ids)
        with self._limiter_lock:
            self._limiter.try_acquire("goldsky", blocking=True)
        with self._stats_lock:
            self.requests_sent += 1
        try:
            response = self._http.post(self.settings.endpoint, content=body)
        except httpx.TimeoutException as exc:
            raise TransientGoldskyError(
                f"request timed out after {self.settings.timeout_s}s ({type(exc).__name__})",
                None,
                condition_ids,
            ) from None
        except httpx.UnsupportedProtocol as exc:
            raise PermanentGoldskyError(
                f"GOLDSKY_ENDPOINT {redact(self.settings.endpoint)!r} is not an http(s) URL: "
                f"{redact(str(exc))}",
                condition_ids,
            ) from None
        except httpx.RequestError as exc:
            # Transport errors (resets, refused or dropped connections, bodies cut short) and
            # bodies that cannot be decoded: all worth another attempt, none may escape as a
            # non-Goldsky error that would fail the shard without naming its batch.
            raise TransientGoldskyError(
                f"connection failed: {type(exc).__name__}: {exc}", None, condition_ids
            ) from None
        return classify(
            response,
            condition_ids,
            self.settings.dialect,
            credentials=bool(self.settings.api_key or self._http.headers.get("authorization")),
        )


__all__ = ["ClientSettings", "Dialect", "GoldskyClient", "GoldskyError", "SubgraphMeta"]
