"""Fault injection plan, server-side rate limiter and traffic log of the simulator.

Why: a backfill client is only as good as its behaviour on a bad day. Goldsky answers
rate limits with a 429 (with or without ``Retry-After``) or with a "query allowance" text
under 200/403/429, gateways return HTML 502/503 pages, graph-node returns errors inside
HTTP 200 bodies, and connections drop. Tests switch these on precisely (the next K
requests, a seeded probability, or requests matching a predicate) and then check what the
client did through the traffic log, whose aggregate counters are cheap enough to keep for
a million-id run (distinct ids are a bitmap over the structured universe).

Fault rule JSON form (``POST /_admin/faults``; unknown keys are rejected)::

    {"kind": "http_429",            # a FaultKind value
     "count": 3,                    # optional: fire on the next 3 matching requests
     "probability": 0.2,            # optional: fire with p (seeded RNG)
     "match": {"id_in_contains": ["0x…"],   # optional predicates, all must hold
               "field": "conditions", "operation": "Page", "has_block": true},
     "retry_after": 2, "status": 429, "delay_s": 1.5, "message": "…",
     "keep": 0.5, "mode": "body", "reset": false}   # kind-specific parameters

Without ``count`` and ``probability`` a rule fires on every matching request until the
rules are cleared.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "ALLOWANCE_MESSAGE",
    "OVERLOADED_MESSAGE",
    "TIMEOUT_MESSAGE",
    "FaultKind",
    "FaultPlan",
    "FaultRule",
    "RateLimiter",
    "RequestInfo",
    "RequestRecord",
    "TrafficLog",
]

#: Body Goldsky sends when the per-IP request allowance is exhausted.
ALLOWANCE_MESSAGE = "Sorry, you've surpassed your query allowance. Please try again - limits reset every 10 seconds."
#: graph-node `QueryExecutionError::Throttled`.
OVERLOADED_MESSAGE = (
    "service is overloaded and can not run the query right now. Please try again in a few minutes"
)
#: graph-node `QueryExecutionError::Timeout`.
TIMEOUT_MESSAGE = "Query timed out"
#: graph-node `QueryError::IndexingError` (data is dropped).
INDEXING_ERROR_MESSAGE = "indexing_error"


class FaultKind(StrEnum):
    """What an injected fault does to one request."""

    HTTP_429 = "http_429"
    """HTTP 429; ``Retry-After: <retry_after>`` header only if ``retry_after`` is set."""
    ALLOWANCE = "allowance"
    """The allowance text as the body, under HTTP ``status`` (200 default, 429 or 403)."""
    HTML_ERROR = "html_error"
    """A gateway HTML page under HTTP ``status`` (502 default, or 503/504)."""
    INDEXING_ERROR = "indexing_error"
    """HTTP 200 ``{"errors":[{"message":"indexing_error"}]}``, no data."""
    TIMEOUT = "timeout"
    """HTTP 200 ``{"errors":[{"message":"Query timed out"}]}``, no data."""
    OVERLOADED = "overloaded"
    """HTTP 200 with graph-node's "service is overloaded" error, no data."""
    GRAPHQL_ERROR = "graphql_error"
    """HTTP 200 with ``message`` as the only error, no data."""
    PARTIAL = "partial"
    """Real answer with rows dropped (``keep`` share kept) plus an error (``message``)."""
    SLOW = "slow"
    """Sleep ``delay_s`` seconds, then answer normally."""
    DROP = "drop"
    """Close the connection without any response (``reset`` sends a TCP RST)."""
    TRUNCATE = "truncate"
    """Real answer cut in half; ``mode`` "body" (consistent Content-Length, invalid JSON)
    or "connection" (full Content-Length announced, connection closed mid-body)."""
    DUPLICATE_ROWS = "duplicate_rows"
    """Real answer with the first row of each collection repeated."""
    UNREQUESTED_ROWS = "unrequested_rows"
    """Real answer plus one row for a known id the request did not ask for."""
    META_INDEXING_ERRORS = "meta_indexing_errors"
    """Real answer with ``_meta.hasIndexingErrors: true``."""


#: Faults that answer without executing the query.
PRE_EXECUTION_KINDS = frozenset(
    {
        FaultKind.HTTP_429,
        FaultKind.ALLOWANCE,
        FaultKind.HTML_ERROR,
        FaultKind.INDEXING_ERROR,
        FaultKind.TIMEOUT,
        FaultKind.OVERLOADED,
        FaultKind.GRAPHQL_ERROR,
        FaultKind.DROP,
    }
)


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the simulator understood of a GraphQL request before answering it.

    Extracted from the parsed document (variables substituted) so that fault predicates
    can target requests, e.g. "requests whose id_in contains X".
    """

    path: str
    operation: str | None = None
    fields: tuple[str, ...] = ()
    first: int | None = None
    skip: int | None = None
    ids: tuple[str, ...] = ()
    block: int | None = None
    authorization: bool = False
    query: str = ""


RequestPredicate = Callable[[RequestInfo], bool]

_JSON_RULE_KEYS = frozenset(
    {
        "kind",
        "count",
        "probability",
        "match",
        "retry_after",
        "status",
        "delay_s",
        "message",
        "keep",
        "mode",
        "reset",
    }
)
_JSON_MATCH_KEYS = frozenset({"id_in_contains", "field", "operation", "has_block"})


@dataclass(slots=True)
class FaultRule:
    """One fault and when it fires.

    Activation: ``match`` (callable) and the JSON-friendly ``match_ids`` /
    ``match_field`` / ``match_operation`` / ``match_has_block`` must all accept the
    request; then ``probability`` (if set) is drawn from the plan's seeded RNG; then
    ``count`` (if set) is the number of firings left. With neither count nor probability
    the rule fires on every matching request until removed.
    """

    kind: FaultKind
    count: int | None = None
    probability: float | None = None
    match: RequestPredicate | None = None
    match_ids: frozenset[str] | None = None
    match_field: str | None = None
    match_operation: str | None = None
    match_has_block: bool | None = None
    retry_after: float | None = None
    status: int | None = None
    delay_s: float = 1.0
    message: str | None = None
    keep: float = 0.5
    mode: str = "body"
    reset: bool = False
    rule_id: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        self.kind = FaultKind(self.kind)
        if self.count is not None and self.count < 0:
            raise ValueError("count must be >= 0")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        if self.delay_s < 0:
            raise ValueError("delay_s must be >= 0")
        if not 0.0 <= self.keep <= 1.0:
            raise ValueError("keep must be within [0, 1]")
        if self.mode not in ("body", "connection"):
            raise ValueError("mode must be 'body' or 'connection'")
        allowed: dict[FaultKind, tuple[int, ...]] = {
            FaultKind.ALLOWANCE: (200, 429, 403),
            FaultKind.HTML_ERROR: (502, 503, 504),
        }
        if self.status is not None and self.status not in allowed.get(self.kind, (self.status,)):
            raise ValueError(f"status for {self.kind} must be one of {allowed[self.kind]}")

    def matches(self, info: RequestInfo) -> bool:
        """Predicate part of the activation (no RNG draw, no count change)."""
        if self.match_ids is not None and not self.match_ids.intersection(info.ids):
            return False
        if self.match_field is not None and self.match_field not in info.fields:
            return False
        if self.match_operation is not None and info.operation != self.match_operation:
            return False
        if self.match_has_block is not None and (info.block is not None) != self.match_has_block:
            return False
        return self.match is None or bool(self.match(info))

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.count <= 0

    def describe(self) -> dict[str, Any]:
        """JSON view of the rule (the predicate callable is shown as a flag)."""
        match: dict[str, Any] = {}
        if self.match_ids is not None:
            match["id_in_contains"] = sorted(self.match_ids)
        if self.match_field is not None:
            match["field"] = self.match_field
        if self.match_operation is not None:
            match["operation"] = self.match_operation
        if self.match_has_block is not None:
            match["has_block"] = self.match_has_block
        if self.match is not None:
            match["callable"] = True
        return {
            "id": self.rule_id,
            "kind": str(self.kind),
            "count": self.count,
            "probability": self.probability,
            "match": match,
            "retry_after": self.retry_after,
            "status": self.status,
            "delay_s": self.delay_s,
            "message": self.message,
            "keep": self.keep,
            "mode": self.mode,
            "reset": self.reset,
            "fired": self.fired,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> FaultRule:
        """Build a rule from the admin JSON form described in the module docstring."""
        if not isinstance(obj, Mapping):
            raise ValueError("a fault rule must be a JSON object")
        unknown = set(obj) - _JSON_RULE_KEYS
        if unknown:
            raise ValueError(f"unknown fault rule keys: {sorted(unknown)}")
        if "kind" not in obj:
            raise ValueError("a fault rule needs a 'kind'")
        try:
            kind = FaultKind(obj["kind"])
        except ValueError:
            kinds = ", ".join(k.value for k in FaultKind)
            raise ValueError(f"unknown fault kind {obj['kind']!r}; one of: {kinds}") from None
        match = obj.get("match") or {}
        if not isinstance(match, Mapping):
            raise ValueError("'match' must be an object")
        unknown = set(match) - _JSON_MATCH_KEYS
        if unknown:
            raise ValueError(f"unknown match keys: {sorted(unknown)}")
        ids = match.get("id_in_contains")
        if isinstance(ids, str):
            ids = [ids]
        return cls(
            kind=kind,
            count=_opt_int(obj.get("count")),
            probability=_opt_float(obj.get("probability")),
            match_ids=None if ids is None else frozenset(str(i) for i in ids),
            match_field=match.get("field"),
            match_operation=match.get("operation"),
            match_has_block=match.get("has_block"),
            retry_after=_opt_float(obj.get("retry_after")),
            status=_opt_int(obj.get("status")),
            delay_s=float(obj.get("delay_s", 1.0)),
            message=obj.get("message"),
            keep=float(obj.get("keep", 0.5)),
            mode=str(obj.get("mode", "body")),
            reset=bool(obj.get("reset", False)),
        )


def _opt_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)


def _opt_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


class FaultPlan:
    """Ordered fault rules; the first rule that activates for a request wins.

    Thread-safe; probability draws use one RNG seeded at construction so that a
    sequential test run is reproducible.
    """

    def __init__(self, seed: int = 0) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._next_id = 1

    def add(
        self,
        kind: FaultKind | str,
        *,
        count: int | None = None,
        probability: float | None = None,
        match: RequestPredicate | None = None,
        **params: Any,
    ) -> FaultRule:
        """Add a rule, e.g. ``plan.add("http_429", count=2, retry_after=1)``."""
        rule = FaultRule(
            kind=FaultKind(kind), count=count, probability=probability, match=match, **params
        )
        return self.add_rule(rule)

    def add_rule(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            rule.rule_id = self._next_id
            self._next_id += 1
            self._rules.append(rule)
        return rule

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.rule_id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def choose(self, info: RequestInfo) -> FaultRule | None:
        """Pick (and consume one firing of) the fault for this request, if any."""
        with self._lock:
            for rule in self._rules:
                if rule.exhausted or not rule.matches(info):
                    continue
                if rule.probability is not None and self._rng.random() >= rule.probability:
                    continue
                if rule.count is not None:
                    rule.count -= 1
                rule.fired += 1
                self._rules = [r for r in self._rules if not r.exhausted]
                return rule
        return None


class RateLimiter:
    """Sliding-window limiter: at most ``requests`` accepted per ``window_s`` seconds.

    Only accepted requests occupy the window, so a client that backs off gets through
    again as soon as the window slides; one that hammers keeps getting 429s.
    """

    def __init__(self, requests: int, window_s: float) -> None:
        if requests < 1 or window_s <= 0:
            raise ValueError("rate limit needs requests >= 1 and window_s > 0")
        self.requests = requests
        self.window_s = window_s
        self._accepted: deque[float] = deque()
        self._lock = threading.Lock()

    def allow(self, now: float | None = None) -> bool:
        t = time.monotonic() if now is None else now
        with self._lock:
            horizon = t - self.window_s
            while self._accepted and self._accepted[0] <= horizon:
                self._accepted.popleft()
            if len(self._accepted) >= self.requests:
                return False
            self._accepted.append(t)
            return True

    def reset(self) -> None:
        with self._lock:
            self._accepted.clear()


@dataclass(slots=True)
class RequestRecord:
    """One received request, as kept in the traffic log.

    ``authorization`` only says whether the header was present: its value is never kept.
    ``served`` means a clean answer (HTTP 200, no fault, no GraphQL errors).
    """

    seq: int
    time: float
    elapsed_s: float
    path: str
    status: int | None
    fault: str | None
    rate_limited: bool
    operation: str | None
    fields: list[str]
    first: int | None
    skip: int | None
    ids: int
    block: int | None
    authorization: bool
    rows: int
    errors: list[str]
    served: bool
    duration_ms: float
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _DistinctIds:
    """Distinct-id counter: a bitmap for structured-universe indices, a set otherwise."""

    def __init__(self, size: int) -> None:
        self._bits = bytearray((size + 7) // 8)
        self._size = size
        self._others: set[str] = set()
        self.total = 0
        self.distinct = 0

    def add(self, index: int | None, cid: str) -> bool:
        """Count one occurrence; return True if the id had been seen before."""
        self.total += 1
        if index is not None and 0 <= index < self._size:
            byte, bit = divmod(index, 8)
            mask = 1 << bit
            if self._bits[byte] & mask:
                return True
            self._bits[byte] |= mask
        else:
            if cid in self._others:
                return True
            self._others.add(cid)
        self.distinct += 1
        return False

    def clear(self) -> None:
        self._bits = bytearray(len(self._bits))
        self._others.clear()
        self.total = 0
        self.distinct = 0


@dataclass(slots=True)
class _Counters:
    requests: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    unauthorized: int = 0
    bad_requests: int = 0
    error_responses: int = 0
    with_authorization: int = 0
    max_first: int = 0  # 0 until a request sends an explicit `first`
    collection_queries_without_first: int = 0
    max_ids_per_request: int = 0
    rows_returned: int = 0
    max_requests_per_second: int = 0
    max_in_flight: int = 0


class TrafficLog:
    """Every request the simulator received, plus cheap aggregate statistics.

    Aggregates cover all requests since the last :meth:`reset`; individual records are
    kept for the most recent ``keep`` requests only.
    """

    def __init__(
        self, index_of: Callable[[str], int | None], size: int, keep: int = 10_000
    ) -> None:
        self._index_of = index_of
        self._size = size
        self._lock = threading.Lock()
        self._records: deque[RequestRecord] = deque(maxlen=keep)
        self._started = time.monotonic()
        self._reset_state()

    def _reset_state(self) -> None:
        self._c = _Counters()
        self._requested = _DistinctIds(self._size)
        self._served = _DistinctIds(self._size)
        self._returned = _DistinctIds(self._size)
        self._last_second: deque[float] = deque()
        self._in_flight = 0
        self._seq = 0

    def reset(self) -> None:
        """Forget all records and statistics (in-flight requests are still counted)."""
        with self._lock:
            in_flight = self._in_flight
            self._records.clear()
            self._reset_state()
            self._in_flight = in_flight

    def begin(self) -> tuple[int, float]:
        """Note a request's arrival; returns its sequence number and arrival time."""
        now = time.monotonic()
        with self._lock:
            self._seq += 1
            self._in_flight += 1
            self._c.max_in_flight = max(self._c.max_in_flight, self._in_flight)
            window = self._last_second
            window.append(now)
            while window and window[0] <= now - 1.0:
                window.popleft()
            self._c.max_requests_per_second = max(self._c.max_requests_per_second, len(window))
            return self._seq, now

    def end(self) -> None:
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)

    def record(
        self,
        *,
        seq: int,
        arrived: float,
        info: RequestInfo,
        status: int | None,
        fault: FaultRule | None,
        rate_limited: bool,
        rows: Iterable[str],
        errors: list[str],
        collection_fields: int,
        note: str | None = None,
    ) -> RequestRecord:
        """Store one finished request and update the aggregates."""
        returned = list(rows)
        served = status == 200 and fault is None and not errors and not rate_limited
        now = time.monotonic()
        rec = RequestRecord(
            seq=seq,
            time=time.time(),
            elapsed_s=round(arrived - self._started, 6),
            path=info.path,
            status=status,
            fault=None if fault is None else str(fault.kind),
            rate_limited=rate_limited,
            operation=info.operation,
            fields=list(info.fields),
            first=info.first,
            skip=info.skip,
            ids=len(info.ids),
            block=info.block,
            authorization=info.authorization,
            rows=len(returned),
            errors=errors[:5],
            served=served,
            duration_ms=round((now - arrived) * 1000.0, 3),
            note=note,
        )
        index_of = self._index_of
        with self._lock:
            c = self._c
            self._records.append(rec)
            c.requests += 1
            c.by_status[str(status) if status is not None else "none"] += 1
            if fault is not None:
                c.faults[str(fault.kind)] += 1
            if rate_limited:
                c.rate_limited += 1
            if status == 401:
                c.unauthorized += 1
            if status == 400:
                c.bad_requests += 1
            if errors:
                c.error_responses += 1
            if info.authorization:
                c.with_authorization += 1
            if info.first is not None:
                c.max_first = max(c.max_first, info.first)
            if collection_fields and info.first is None:
                c.collection_queries_without_first += 1
            c.max_ids_per_request = max(c.max_ids_per_request, len(info.ids))
            for cid in info.ids:
                idx = index_of(cid)
                self._requested.add(idx, cid)
                if served:
                    self._served.add(idx, cid)
            if served:
                c.rows_returned += len(returned)
                for cid in returned:
                    self._returned.add(index_of(cid), cid)
        return rec

    def stats(self) -> dict[str, Any]:
        """Aggregate statistics as a JSON-ready dict."""
        with self._lock:
            c = self._c
            return {
                "requests": c.requests,
                "by_status": dict(c.by_status),
                "faults": dict(c.faults),
                "rate_limited": c.rate_limited,
                "unauthorized": c.unauthorized,
                "bad_requests": c.bad_requests,
                "error_responses": c.error_responses,
                "with_authorization": c.with_authorization,
                "ids_requested": self._requested.total,
                "ids_requested_distinct": self._requested.distinct,
                "ids_requested_repeated": self._requested.total - self._requested.distinct,
                "ids_served": self._served.total,
                "ids_served_distinct": self._served.distinct,
                "ids_served_repeated": self._served.total - self._served.distinct,
                "rows_returned": c.rows_returned,
                "rows_returned_distinct": self._returned.distinct,
                "max_first": c.max_first,
                "collection_queries_without_first": c.collection_queries_without_first,
                "max_ids_per_request": c.max_ids_per_request,
                "max_requests_per_second": c.max_requests_per_second,
                "max_in_flight": c.max_in_flight,
                "in_flight": self._in_flight,
            }

    def records(self, limit: int | None = None) -> list[RequestRecord]:
        """The most recent records, oldest first (all kept records if ``limit`` is None)."""
        with self._lock:
            items = list(self._records)
        return items if limit is None else items[-limit:] if limit > 0 else []
