"""Fault injection plan and server-side rate limiter of the simulator (its traffic log: traffic.py).

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
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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

    def allow(self, now: float | None = None, weight: int = 1) -> bool:
        """Accept ``weight`` requests at once (a JSON-RPC batch of that many calls) or none."""
        t = time.monotonic() if now is None else now
        with self._lock:
            horizon = t - self.window_s
            while self._accepted and self._accepted[0] <= horizon:
                self._accepted.popleft()
            if len(self._accepted) + weight > max(self.requests, weight):
                return False
            self._accepted.extend([t] * weight)
            return True

    def reset(self) -> None:
        with self._lock:
            self._accepted.clear()
