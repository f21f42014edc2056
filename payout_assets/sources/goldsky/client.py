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
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from gql import GraphQLRequest, gql
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLList,
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    get_nullable_type,
    validate,
)
from pyrate_limiter import Limiter, Rate, SQLiteBucket
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from payout_assets.redact import redact
from payout_assets.sources.goldsky.errors import (
    BlockNotIndexedError,
    GoldskyError,
    PermanentGoldskyError,
    RateLimitedError,
    ResponseIntegrityError,
    TransientGoldskyError,
)
from payout_assets.validate.ids import InvalidId, from_subgraph_id, to_subgraph_id
from payout_assets.validate.payouts import MAX_UINT_DIGITS, RawCondition

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

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_FIRST:
            raise ValueError(
                f"batch size must be 1..{MAX_FIRST} (graph-node's cap), got {self.batch_size}"
            )
        if self.max_rps <= 0:
            raise ValueError(f"GOLDSKY_MAX_RPS must be positive, got {self.max_rps}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for the fetch worker (``payout_assets.sources.goldsky.worker``). It holds the secrets:
        ``worker.split_secrets`` sends those through the worker's environment, never the Pipes
        context file, which a killed run leaves in the temp dir."""
        return {**asdict(self), "dialect": self.dialect.value, "headers": dict(self.headers)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClientSettings:
        return cls(**{**data, "dialect": Dialect(data["dialect"])})


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
    _require_first(name, document, _schema(dialect))
    return document


def _require_first(name: str, document: DocumentNode, schema: GraphQLSchema) -> None:
    """Refuse a document whose collection fields do not set ``first``.

    Why: graph-node silently caps a collection at 100 rows when ``first`` is omitted, which is
    how the original scripts lost ~90% of the resolved ids without any error. The omission is
    invisible in every answer, so it is caught here, when the client is built.
    """
    query_type = schema.query_type
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode) or query_type is None:
            continue
        for selection in definition.selection_set.selections:
            if not isinstance(selection, FieldNode):
                continue
            root_field = query_type.fields.get(selection.name.value)
            if root_field is None or not isinstance(
                get_nullable_type(root_field.type), GraphQLList
            ):
                continue
            if not any(arg.name.value == "first" for arg in selection.arguments or ()):
                raise PermanentGoldskyError(
                    f"query {name}.graphql asks for the collection `{selection.name.value}` "
                    "without `first`: graph-node would return at most 100 rows per request and "
                    "silently drop the rest; pass `first: $first` set to the batch size"
                )


def _rate_limit_db(endpoint: str) -> str:
    """One limiter file per endpoint and host, shared by every process of every backfill."""
    digest = hashlib.sha256(endpoint.encode()).hexdigest()[:16]
    return str(Path(tempfile.gettempdir()) / f"payout-backfill-rate-{digest}.sqlite")


RATE_HEADROOM = 0.95


def _host_limiter(settings: ClientSettings) -> Limiter:
    """``max_rps`` as a sliding window: at most N requests in any window of N / max_rps seconds
    (10 per second for the default), less ``RATE_HEADROOM``: an admitted request still waits
    for a thread, a socket and the CPU before it reaches the server (eight shard processes on
    two cores: tens of milliseconds), and that jitter must not pack two windows' requests into
    one of the server's. (Measured at 10 rps: without headroom the benchmark drew 11 429s in
    188 requests; with 10%, 1 in 178 but 10% of the allowance unused, about 10 s of a
    1,000,000-id backfill; with 5%, see the README's benchmark.) A window of one request per
    1/max_rps would be stricter but loses more of the allowance to the same jitter at every
    single request."""
    limit = max(1, int(settings.max_rps))
    window_ms = math.ceil(limit * 1000 / (settings.max_rps * RATE_HEADROOM))
    bucket = SQLiteBucket.init_from_file(
        [Rate(limit, window_ms)],
        table=f"rate_{limit}_per_{window_ms}ms",
        db_path=settings.rate_limit_db or _rate_limit_db(settings.endpoint),
        use_file_lock=True,
    )
    return Limiter(bucket, buffer_ms=50)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _permanent_hint(message: str, dialect: Dialect) -> str:
    """The fix for a permanent graph-node error, for the dialect the client speaks.

    Why dialect-aware: a legacy client on pnl-subgraph and a pnl client on an old schema fail
    with the same "has no field" text but need opposite settings.
    """
    lowered = message.lower()
    if (
        "has no field" in lowered
        or "unknown argument" in lowered
        or "cannot query field" in lowered
    ):
        if dialect is Dialect.LEGACY:
            return (
                "the endpoint's schema lacks a field of the legacy dialect (GOLDSKY_DIALECT=legacy "
                "asks for decimal `payouts` and `resolutionTimestamp`): for pnl-subgraph unset "
                "GOLDSKY_DIALECT or set it to pnl, or point GOLDSKY_ENDPOINT at the legacy subgraph"
            )
        return (
            "the endpoint's schema lacks a field of the pnl dialect: check GOLDSKY_ENDPOINT points "
            "at pnl-subgraph, or set GOLDSKY_DIALECT=legacy for the old schema"
        )
    if "`first` argument" in lowered:
        return (
            "a batch asked for more rows than this endpoint allows per request (graph-node's cap "
            "is 1000; this host may cap lower): set the Goldsky resource's batch_size to at most "
            "the limit named in the message"
        )
    if "`skip` argument" in lowered:
        return "page with an `id_gt` cursor instead of `skip`, which hosts cap"
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
        self._http = httpx.Client(
            timeout=httpx.Timeout(settings.timeout_s),
            headers=request_headers(settings.api_key, settings.headers),
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
                out.append(_raw_condition(cid, row, condition_ids))
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

        # stop_before_delay, not stop_after_delay: a backoff (or a long Retry-After) that would
        # end past the budget stops the retries now instead of sleeping beyond max_retry_s.
        retrying = Retrying(
            stop=stop_after_attempt(self.settings.max_attempts)
            | stop_before_delay(self.settings.max_retry_s),
            wait=self._wait,
            retry=retry_if_exception_type(TransientGoldskyError),
            before_sleep=self._before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
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
        return _classify(
            response,
            condition_ids,
            self.settings.dialect,
            credentials=bool(self.settings.api_key or self._http.headers.get("authorization")),
        )


def _raw_condition(
    cid: str, row: Mapping[str, Any], condition_ids: Sequence[str] = ()
) -> RawCondition:
    """The row's values as strings, exactly as sent; their meaning is checked by the parser.

    A list field that is not a list (or a scalar that is a list or an object) breaks the schema:
    ``tuple("10")`` would silently read as ``("1", "0")``, so the answer is refused instead.
    """

    def strings(name: str) -> tuple[str, ...] | None:
        value = row.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or any(isinstance(v, list | dict) for v in value):
            raise ResponseIntegrityError(
                f"answer has `{name}` = {json.dumps(value)[:80]} for {cid}: expected a list of "
                "scalars",
                condition_ids=condition_ids,
            )
        return tuple(v if isinstance(v, str) else json.dumps(v) for v in value)

    def string(name: str) -> str | None:
        value = row.get(name)
        if value is None:
            return None
        if isinstance(value, list | dict):
            raise ResponseIntegrityError(
                f"answer has `{name}` = {json.dumps(value)[:80]} for {cid}: expected a scalar",
                condition_ids=condition_ids,
            )
        return value if isinstance(value, str) else json.dumps(value)

    return RawCondition(
        condition_id=cid,
        payout_numerators=strings("payoutNumerators"),
        payout_denominator=string("payoutDenominator"),
        payouts=strings("payouts"),
        resolution_timestamp=string("resolutionTimestamp"),
    )


def _json_int(literal: str) -> int | str:
    """A JSON integer literal as an int, or kept as its text when it is longer than any integer
    the subgraph has (Python refuses ``int()`` of more than 4,300 digits, and would fail the whole
    answer): the payout parser then rejects that one row with the reason."""
    return int(literal) if len(literal) <= MAX_UINT_DIGITS else literal


def _classify(
    response: httpx.Response,
    condition_ids: Sequence[str],
    dialect: Dialect = Dialect.PNL,
    credentials: bool = False,
) -> Mapping[str, Any]:
    """The ``data`` of a good answer; otherwise the right error for what went wrong.

    ``credentials`` says whether an authorization header was sent, so a 401/403 can say whether
    the key is missing or wrong (never what it is).
    """
    status = response.status_code
    text = response.text
    retry_after = _retry_after(response.headers.get("retry-after"))
    if status == 429 or ALLOWANCE_TEXT in text:
        raise RateLimitedError(
            f"rate limited by the endpoint (HTTP {status})", retry_after, condition_ids
        )
    if status >= 500 or status == 408:
        raise TransientGoldskyError(f"HTTP {status} from the endpoint", retry_after, condition_ids)
    if status in (401, 403):
        fix = (
            "GOLDSKY_API_KEY (or the Authorization header in GOLDSKY_HEADERS) was sent and "
            "refused: check it is the key for this endpoint"
            if credentials
            else "no API key was sent: set GOLDSKY_API_KEY for a private endpoint"
        )
        raise PermanentGoldskyError(
            f"HTTP {status}: the endpoint refused the request as unauthorised; {fix}",
            condition_ids,
        )
    if status >= 400:
        fix = (
            "check GOLDSKY_ENDPOINT is the subgraph's GraphQL URL (…/subgraphs/<name>/<version>/gn)"
            if status in (404, 405)
            else "the endpoint refused the request as malformed; check GOLDSKY_ENDPOINT and "
            "GOLDSKY_DIALECT"
        )
        raise PermanentGoldskyError(
            f"HTTP {status} from the endpoint: {text[:300]} — {fix}", condition_ids
        )
    try:
        payload = json.loads(text, parse_int=_json_int)
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
            f"graph-node: {messages} — {_permanent_hint(messages, dialect)}", condition_ids
        )
    data = payload.get("data")
    if not isinstance(data, dict):
        raise TransientGoldskyError("answer has neither data nor errors", None, condition_ids)
    return data


__all__ = ["ClientSettings", "Dialect", "GoldskyClient", "GoldskyError", "SubgraphMeta"]
