"""The simulator's traffic log: every request recorded (bounded), with aggregate counters cheap\nenough to keep for a million-id run (distinct ids are a bitmap over the structured universe)."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .faults import (
    FaultRule,
    RequestInfo,
)


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
