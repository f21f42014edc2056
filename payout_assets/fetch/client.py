"""The Goldsky / graph-node client: exact, polite, and loud when it cannot do its job.

* Queries are ``.graphql`` files parsed by gql and validated against the subgraph's schema when
  the client is built, so a typo fails at start-up, not after an hour. Ids travel as GraphQL
  variables and every batch query sets ``first`` to the batch size (≤ 1000).
* Every request has a timeout. Transient failures are retried by tenacity with exponential
  backoff and full jitter, bounded in attempts and total time, honouring ``Retry-After``.
* One request rate for every process on the host: pyrate-limiter's SQLite bucket with a file
  lock, keyed by endpoint, so eight shard processes together stay under ``GOLDSKY_MAX_RPS``.
* An answer is checked before it is trusted: only ids that were asked for, none twice, never
  more rows than ``first``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from gql import GraphQLRequest, gql
from graphql import GraphQLSchema, build_schema, validate
from pyrate_limiter import Limiter, Rate, SQLiteBucket
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from payout_assets.fetch.errors import (
    BlockNotIndexedError,
    GoldskyError,
    PermanentGoldskyError,
    RateLimitedError,
    ResponseIntegrityError,
    TransientGoldskyError,
)
from payout_assets.validate.ids import InvalidId, from_subgraph_id, to_subgraph_id
from payout_assets.validate.payouts import RawCondition

MAX_FIRST = 1000
_HERE = Path(__file__).resolve().parent
ALLOWANCE_TEXT = "surpassed your query allowance"
_TRANSIENT_MESSAGES = (
    "indexing_error",
    "query timed out",
    "service is overloaded",
    "too many requests",
    "database unavailable",
)


class Dialect(StrEnum):
    """Which shape of ``Condition`` the endpoint serves."""

    PNL = "pnl"  # pnl-subgraph: integer payoutNumerators / payoutDenominator
    LEGACY = "legacy"  # old main subgraph / positions-subgraph: decimal payouts, timestamp


@dataclass(frozen=True)
class SubgraphMeta:
    block_number: int
    block_hash: str
    block_timestamp: int | None
    deployment: str
    has_indexing_errors: bool


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
    api_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    rate_limit_db: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_FIRST:
            raise ValueError(
                f"batch size must be 1..{MAX_FIRST} (graph-node's cap), got {self.batch_size}"
            )
        if self.max_rps <= 0:
            raise ValueError(f"GOLDSKY_MAX_RPS must be positive, got {self.max_rps}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")


@cache
def _schema(dialect: Dialect) -> GraphQLSchema:
    return build_schema((_HERE / "schemas" / f"{dialect.value}.graphql").read_text())


@cache
def _document(name: str, dialect: Dialect) -> Any:
    """A query document, parsed by gql and validated against the dialect's schema."""
    document = gql((_HERE / "queries" / f"{name}.graphql").read_text()).document
    errors = validate(_schema(dialect), document)
    if errors:
        raise PermanentGoldskyError(
            f"query {name}.graphql does not fit the {dialect} schema: {errors[0].message}"
        )
    return document


def _rate_limit_db(endpoint: str) -> str:
    """One limiter file per endpoint and host, shared by every process of every backfill."""
    digest = hashlib.sha256(endpoint.encode()).hexdigest()[:16]
    return str(Path(tempfile.gettempdir()) / f"payout-backfill-rate-{digest}.sqlite")


def _host_limiter(settings: ClientSettings) -> Limiter:
    interval_ms = max(1, math.ceil(1000 / settings.max_rps))
    bucket = SQLiteBucket.init_from_file(
        [Rate(1, interval_ms)],
        table=f"rate_{interval_ms}ms",
        db_path=settings.rate_limit_db or _rate_limit_db(settings.endpoint),
        use_file_lock=True,
    )
    return Limiter(bucket, buffer_ms=10)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _permanent_hint(message: str) -> str:
    lowered = message.lower()
    if (
        "has no field" in lowered
        or "unknown argument" in lowered
        or "cannot query field" in lowered
    ):
        return (
            "the endpoint's schema does not have a field this dialect needs: check GOLDSKY_ENDPOINT "
            "points at pnl-subgraph, or set GOLDSKY_DIALECT=legacy for the old schema"
        )
    if "`first` argument" in lowered:
        return (
            "a batch asked for more rows than graph-node allows: keep the batch size at most 1000"
        )
    return "check GOLDSKY_ENDPOINT and GOLDSKY_DIALECT"


class GoldskyClient:
    """A thread-safe client for one endpoint; share it between a shard's fetch threads."""

    def __init__(self, settings: ClientSettings, log: logging.Logger | None = None) -> None:
        self.settings = settings
        self.log = log or logging.getLogger(__name__)
        self._payouts_doc = _document(
            "payouts_pnl" if settings.dialect is Dialect.PNL else "payouts_legacy", settings.dialect
        )
        self._meta_doc = _document("meta", settings.dialect)
        self._changed_doc = _document("changed_since", settings.dialect)
        headers = {"content-type": "application/json", **dict(settings.headers)}
        if settings.api_key:
            headers["authorization"] = f"Bearer {settings.api_key}"
        self._http = httpx.Client(
            timeout=httpx.Timeout(settings.timeout_s),
            headers=headers,
            limits=httpx.Limits(max_connections=settings.concurrency + 2),
        )
        self._limiter = _host_limiter(settings)
        self._limiter_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._cancelled = threading.Event()
        self.requests_sent = 0
        self.retries = 0

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
                out.append(_raw_condition(cid, row))
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

        def attempt() -> Any:
            data = self._post(body, condition_ids)
            return parse(data) if parse is not None else data

        retrying = Retrying(
            stop=stop_after_attempt(self.settings.max_attempts)
            | stop_after_delay(self.settings.max_retry_s),
            wait=self._wait,
            retry=retry_if_exception_type(TransientGoldskyError),
            before_sleep=self._before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except TransientGoldskyError as exc:
            raise type(exc)(
                f"{exc} (gave up after {self.settings.max_attempts} attempts or "
                f"{self.settings.max_retry_s:.0f}s of retries)",
                retry_after_s=exc.retry_after_s,
                condition_ids=condition_ids or exc.condition_ids,
            ) from exc

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_random_exponential(
            multiplier=self.settings.backoff_initial_s, max=self.settings.backoff_max_s
        )(state)
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after_s", None)
        return max(backoff, retry_after) if retry_after is not None else backoff

    def _before_sleep(self, state: RetryCallState) -> None:
        with self._stats_lock:
            self.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        self.log.warning(
            "goldsky: attempt %d failed (%s); retrying in %.2fs",
            state.attempt_number,
            exc,
            state.next_action.sleep if state.next_action else 0.0,
        )

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
                f"request timed out after {self.settings.timeout_s}s ({type(exc).__name__})"
            ) from None
        except httpx.TransportError as exc:
            raise TransientGoldskyError(f"connection failed: {type(exc).__name__}: {exc}") from None
        return _classify(response, condition_ids)


def _raw_condition(cid: str, row: Mapping[str, Any]) -> RawCondition:
    def strings(value: Any) -> tuple[str, ...] | None:
        return (
            None if value is None else tuple(str(v) if not isinstance(v, str) else v for v in value)
        )

    def string(value: Any) -> str | None:
        return None if value is None else str(value)

    return RawCondition(
        condition_id=cid,
        payout_numerators=strings(row.get("payoutNumerators")),
        payout_denominator=string(row.get("payoutDenominator")),
        payouts=strings(row.get("payouts")),
        resolution_timestamp=string(row.get("resolutionTimestamp")),
    )


def _classify(response: httpx.Response, condition_ids: Sequence[str]) -> Mapping[str, Any]:
    """The ``data`` of a good answer; otherwise the right error for what went wrong."""
    status = response.status_code
    text = response.text
    retry_after = _retry_after(response.headers.get("retry-after"))
    if status == 429 or ALLOWANCE_TEXT in text:
        raise RateLimitedError(
            f"rate limited by the endpoint (HTTP {status})", retry_after, condition_ids
        )
    if status >= 500:
        raise TransientGoldskyError(f"HTTP {status} from the endpoint", retry_after, condition_ids)
    if status in (401, 403):
        raise PermanentGoldskyError(
            f"HTTP {status}: the endpoint refused the credentials; set GOLDSKY_API_KEY for a private endpoint",
            condition_ids,
        )
    if status >= 400:
        raise PermanentGoldskyError(f"HTTP {status} from the endpoint: {text[:300]}", condition_ids)
    try:
        payload = json.loads(text)
    except ValueError:
        raise TransientGoldskyError(
            f"answer is not JSON (HTTP {status}, {len(text)} bytes): {text[:80]!r}",
            None,
            condition_ids,
        ) from None
    if not isinstance(payload, dict):
        raise TransientGoldskyError("answer is JSON but not an object", None, condition_ids)
    errors = payload.get("errors")
    if errors:
        messages = "; ".join(
            str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors
        )
        lowered = messages.lower()
        if "only indexed up to block number" in lowered:
            raise BlockNotIndexedError(
                f"{messages} (the backfill is pinned to a block this endpoint has not indexed; "
                "if it never catches up, re-materialise missing_condition_ids to take a new snapshot)",
                None,
                condition_ids,
            )
        if any(m in lowered for m in _TRANSIENT_MESSAGES):
            raise TransientGoldskyError(f"graph-node: {messages}", None, condition_ids)
        raise PermanentGoldskyError(
            f"graph-node: {messages} — {_permanent_hint(messages)}", condition_ids
        )
    data = payload.get("data")
    if not isinstance(data, dict):
        raise TransientGoldskyError("answer has neither data nor errors", None, condition_ids)
    return data


__all__ = ["ClientSettings", "Dialect", "GoldskyClient", "GoldskyError", "SubgraphMeta"]
