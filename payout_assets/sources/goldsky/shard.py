"""One shard's backfill: read its ids in chunks, fetch them in batches, validate, stage.

This is the loop behind the ``goldsky_payouts`` asset. Fetching runs on a small thread pool (the
per-shard in-flight bound); parsing, validation and writes happen on the calling thread, so the
embedded store is only ever touched by one thread of the process. Rows are staged in bounded
flushes, and every id asked for gets exactly one staged outcome: ``resolved``, ``unresolved``,
``not_found`` or ``rejected`` (with the rule it broke).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from payout_assets.sources.goldsky.client import GoldskyClient
from payout_assets.sources.goldsky.errors import GoldskyError
from payout_assets.validate.ids import is_canonical
from payout_assets.validate.payouts import (
    MAX_OUTCOMES,
    Payout,
    PayoutFormatError,
    RawCondition,
    parse_payout,
)
from payout_assets.validate.schema import vector_failures
from payout_assets.warehouse import tables
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets.warehouse.tables import Snapshot

FLUSH_ROWS = 20_000  # rows per write: each opens the embedded engine under the shared file lock
PENDING_WRITES = 2  # flushes queued behind the writer before fetching waits (bounds memory)
REJECTED_SAMPLE = 20
RAW_VALUES = MAX_OUTCOMES + 1  # raw values kept of a row "as received": enough to show why
RAW_CHARS = 100  # characters kept of each raw value
NON_CANONICAL_REASON = "condition id is not canonical (64 lowercase hex digits, no 0x)"


@dataclass
class ShardProgress:
    """What a shard has done so far; reported every few batches and at the end."""

    shard: int
    total_ids: int
    done_ids: int = 0
    batches: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    rejected_sample: list[tuple[str, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def summary(self) -> str:
        """The progress line a person reads in the run's log."""
        rate = self.done_ids / self.elapsed_s if self.elapsed_s > 0 else 0.0
        return (
            f"shard-{self.shard:02d}: {self.done_ids:,}/{self.total_ids:,} ids, "
            f"{self.batches} batches, {dict(self.outcomes)}, {rate:,.0f} ids/s"
        )


class ShardFailed(RuntimeError):
    """A batch failed after its retries; carries the batch's ids for the failure metadata."""

    def __init__(self, message: str, condition_ids: Sequence[str]) -> None:
        super().__init__(message)
        self.condition_ids = tuple(condition_ids)


def _batches(chunks: Iterator[list[str]], size: int) -> Iterator[list[str]]:
    for chunk in chunks:
        for start in range(0, len(chunk), size):
            yield chunk[start : start + size]


class _Stager:
    """Turns fetched batches into staged rows, validating payouts in bounded flushes."""

    def __init__(
        self,
        store: ClickHouseStore,
        shard: int,
        run_id: str,
        snapshot: Snapshot,
        progress: ShardProgress,
    ) -> None:
        self.store = store
        self.shard = shard
        self.run_id = run_id
        self.snapshot = snapshot
        self.progress = progress
        self.rows: list[tuple[Any, ...]] = []
        self.candidates: list[tuple[RawCondition, Payout]] = []
        # Writes go through one writer thread, so waiting for the store's lock (other shards
        # are writing) never stops this shard from keeping its requests in flight.
        self._writes: queue.Queue[list[tuple[Any, ...]] | None] = queue.Queue(PENDING_WRITES)
        self._write_error: BaseException | None = None
        self._writer = threading.Thread(
            target=self._write_loop, name=f"stage-{shard:02d}", daemon=True
        )
        self._writer.start()

    def _write_loop(self) -> None:
        while (rows := self._writes.get()) is not None:
            if self._write_error is None:
                try:
                    tables.stage_rows(self.store, rows)
                except BaseException as exc:
                    self._write_error = exc

    def close(self) -> None:
        """Wait for every queued write; re-raise the first one that failed."""
        self._writes.put(None)
        self._writer.join()
        if self._write_error is not None:
            raise self._write_error

    def finish(self, then: Callable[[], None]) -> None:
        """Validate what is pending, wait for the queued writes, then write the last rows and
        run ``then`` (the shard's publish) in one engine session."""
        self._validate()
        self.close()
        with self.store.session():
            if self.rows:
                tables.stage_rows(self.store, self.rows)
            self.rows = []
            then()

    def add_batch(self, asked: Sequence[str], answer: Sequence[RawCondition]) -> None:
        fetched_at = tables.now_utc()
        by_id = {c.condition_id: c for c in answer}
        for cid in asked:
            raw = by_id.get(cid)
            if raw is None:
                self._row(cid, "not_found", "", None, fetched_at)
                continue
            try:
                payout = parse_payout(raw)
            except PayoutFormatError as exc:
                self._row(cid, "rejected", str(exc), None, fetched_at, raw)
                continue
            except (ArithmeticError, ValueError) as exc:  # the parser's bounds missed a case
                reason = f"payout could not be parsed ({type(exc).__name__})"
                self._row(cid, "rejected", reason, None, fetched_at, raw)
                continue
            if payout is None:
                self._row(cid, "unresolved", "", None, fetched_at, raw)
            else:
                self.candidates.append((raw, payout))
        if len(self.rows) + len(self.candidates) >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Validate the pending payouts, then queue everything staged for the writer."""
        self._validate()
        if self._write_error is not None:
            raise self._write_error
        if self.rows:
            self._writes.put(self.rows)
            self.rows = []

    def _validate(self) -> None:
        """Stage the pending payouts, each as resolved or, when it breaks a rule of the pandera
        model, as rejected with the rules."""
        if self.candidates:
            fetched_at = tables.now_utc()
            failures = vector_failures(
                [
                    (raw.condition_id, p.numerators, p.denominator, p.winning_index, p.resolved_at)
                    for raw, p in self.candidates
                ]
            )
            for position, (raw, payout) in enumerate(self.candidates):
                broken = failures.get(position)
                if broken:
                    self._row(
                        raw.condition_id, "rejected", ", ".join(broken), None, fetched_at, raw
                    )
                else:
                    self._row(raw.condition_id, "resolved", "", payout, fetched_at, raw)
            self.candidates = []

    def _row(
        self,
        cid: str,
        outcome: str,
        reason: str,
        payout: Payout | None,
        fetched_at: Any,
        raw: RawCondition | None = None,
    ) -> None:
        if not is_canonical(cid):
            outcome, payout = "rejected", None
            reason = NON_CANONICAL_REASON
        self.progress.outcomes[outcome] += 1
        if outcome == "rejected" and len(self.progress.rejected_sample) < REJECTED_SAMPLE:
            self.progress.rejected_sample.append((cid, reason))
        raw_numerators = [
            _as_stored(v)
            for v in ((raw.payout_numerators or raw.payouts or ()) if raw else ())[:RAW_VALUES]
        ]
        self.rows.append(
            (
                self.shard,
                self.run_id,
                self.snapshot.generation,
                cid,
                outcome,
                reason,
                list(payout.numerators) if payout else [],
                payout.denominator if payout else 0,
                payout.winning_index if payout else -1,
                payout.resolved_at if payout else None,
                raw_numerators,
                _as_stored(raw.payout_denominator or "") if raw else "",
                self.snapshot.block_number,
                fetched_at,
            )
        )


def _as_stored(value: str) -> str:
    """A raw value as the staging table keeps it: a hostile one (thousands of digits) is cut,
    with its length, so the row, the rejected sample and the Checks tab stay small."""
    if len(value) <= RAW_CHARS:
        return value
    return f"{value[:RAW_CHARS]}… ({len(value):,} characters)"


@dataclass(frozen=True)
class ShardIds:
    """A shard's ids, read from the store before its fetch: their count and the chunks."""

    count: int
    chunks: Iterator[list[str]]


def read_shard_ids(store: ClickHouseStore, shard: int, generation: str, chunk: int) -> ShardIds:
    """The shard's ids, read now (in the caller's engine session, else one of their own) and
    spooled, so the fetch holds no session while it reads them."""
    with store.session():
        return ShardIds(
            tables.shard_id_count(store, shard, generation),
            tables.iter_shard_ids(store, shard, generation, chunk),
        )


def run_shard(
    store: ClickHouseStore,
    client: GoldskyClient,
    shard: int,
    run_id: str,
    snapshot: Snapshot,
    ids: ShardIds,
    publish: Callable[[], None],
    on_progress: Callable[[ShardProgress], None] | None = None,
    progress_every: int = 5,
    log: logging.Logger | None = None,
) -> ShardProgress:
    """Fetch, validate and stage every id of ``shard`` (``ids``, read by ``read_shard_ids``),
    then ``publish`` the run in the session of its last write; raises :class:`ShardFailed`."""
    log = log or logging.getLogger(__name__)
    settings = client.settings
    progress = ShardProgress(shard, ids.count)
    stager = _Stager(store, shard, run_id, snapshot, progress)
    batches = _batches(ids.chunks, settings.batch_size)
    in_flight: dict[Future[list[RawCondition]], list[str]] = {}
    pool = ThreadPoolExecutor(
        max_workers=settings.concurrency, thread_name_prefix=f"shard-{shard:02d}"
    )
    try:
        exhausted = False
        while True:
            while not exhausted and len(in_flight) < settings.concurrency:
                batch = next(batches, None)
                if batch is None:
                    exhausted = True
                    break
                in_flight[pool.submit(client.fetch_payouts, batch, snapshot.block_number)] = batch
            if not in_flight:
                break
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                asked = in_flight.pop(future)
                try:
                    answer = future.result()
                except GoldskyError as exc:
                    raise ShardFailed(f"batch of {len(asked)} ids failed: {exc}", asked) from exc
                stager.add_batch(asked, answer)
                progress.done_ids += len(asked)
                progress.batches += 1
                if on_progress and progress.batches % progress_every == 0:
                    on_progress(progress)
        pool.shutdown(wait=True)
        stager.finish(publish)
    except BaseException:
        client.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(BaseException):
            stager.close()
        raise
    if on_progress:
        on_progress(progress)
    log.info(
        "shard %02d: %d ids in %d batches, %s",
        shard,
        progress.done_ids,
        progress.batches,
        dict(progress.outcomes),
    )
    return progress
