"""The block ranges of one scan run, each from its checkpoint to the finalized block.

* Never past the finalized block pinned at the start of the run.
* A range scanned before is continued after its checkpoint, once the checkpoint's block hash is
  confirmed; a changed hash (a reorg) rewinds to the newest checkpoint that still holds.
* A range already complete is scanned again from its start: that is what re-materialising it
  (a UI backfill over old ranges) asks for.
* The provider is read one batch ahead of the writes (a thread fetches while the store writes),
  so the scan keeps the request rate instead of waiting for the store between batches. Each
  write holds rows then checkpoint: a killed run loses at most the batches not yet written.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from payout_assets.sources.polygon.errors import RpcError
from payout_assets.sources.polygon.rpc import RpcClient
from payout_assets.sources.polygon.scan import Block, Chunk, RangeSizer, blocks, scan
from payout_assets.warehouse import chain
from payout_assets.warehouse.chain import BlockRange
from payout_assets.warehouse.store import ClickHouseStore

# A write (one engine session, pandera frames of 5,000, one checkpoint) per this many ranges read,
# or sooner at this many events: what a killed run reads again.
WRITE_CHUNKS = 10
WRITE_ROWS = 5_000

T = TypeVar("T")


@dataclass
class RangeReport:
    block_range: BlockRange
    finalized: int
    finality: str
    scanned_from: int | None = None  # None: nothing new to read
    scanned_to: int | None = None
    chunks: int = 0
    events: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # rows this run wrote
    rescanned: bool = False
    reorg: bool = False  # the checkpoint's block changed: the scan rewound
    reorg_rewound_to: int | None = None  # ... to this checkpoint (None: the range's start)
    stale_rows_deleted: int = 0
    rpc_range: int = 0

    @property
    def complete(self) -> bool:
        return self.scanned_to is not None and self.scanned_to >= self.block_range.last


def _confirmed_checkpoint(
    store: ClickHouseStore, client: RpcClient, block_range: BlockRange, done: int
) -> int | None:
    """``done`` when its recorded hash (if any) still matches the chain, else the newest
    checkpoint whose hash does (None: none does; the range starts over)."""
    ends = chain.hashed_ends(store, block_range)
    if not ends:
        return done
    current = blocks(client, [n for n, _ in ends])
    for number, recorded in ends:
        if current[number].hash == recorded:
            return done if number == ends[0][0] else number
    return None


def _prepare(
    store: ClickHouseStore,
    client: RpcClient,
    report: RangeReport,
    recorded_to: int | None,
    log: logging.Logger,
) -> int:
    """Where the range's scan starts: after its confirmed checkpoint (``recorded_to``), or at
    its first block; rows past that point are deleted first. Sets what the report says about
    the checkpoint."""
    block_range = report.block_range
    done = recorded_to
    if done is not None and done >= block_range.last:
        report.rescanned = True
        done = None
    elif done is not None:
        confirmed = _confirmed_checkpoint(store, client, block_range, done)
        if confirmed != done:
            report.reorg, report.reorg_rewound_to = True, confirmed
            log.warning(
                f"{block_range.key}: the chain changed under the checkpoint at block {done:,} "
                f"(a reorg); rescanning from block {(confirmed or block_range.first - 1) + 1:,}"
            )
            done = confirmed
    report.stale_rows_deleted = chain.rewind(store, block_range, done, recorded_to)
    report.scanned_to = done
    return block_range.first if done is None else done + 1


def _chunks(
    client: RpcClient, plans: Sequence[tuple[RangeReport, int, int]], sizer: RangeSizer
) -> Iterator[tuple[RangeReport, Chunk, bool]]:
    """Each plan's chunks, in order, with whether the chunk ends its plan."""
    for report, start, target in plans:
        # only a range the scan leaves open is continued later: its end's hash is what the next
        # run checks for a reorg; a complete range is scanned anew if ever asked again
        hash_end = target < report.block_range.last
        for chunk in scan(client, client.settings.ctf_address, start, target, sizer, hash_end):
            yield report, chunk, chunk.last == target


def read_ahead(items: Iterator[T], depth: int) -> Iterator[T]:
    """``items``, produced by a thread up to ``depth`` ahead of the consumer. The producer's
    exception is raised to the consumer after what came before it; a consumer that stops early
    stops the producer at its next item."""
    done = object()
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)
            return
        put(done)

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while (item := buffer.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()  # a producer waiting on the provider is not waited for: it stops on its own


def scan_block_ranges(
    store: ClickHouseStore,
    client: RpcClient,
    ranges: Sequence[BlockRange],
    run_id: str,
    log: logging.Logger,
    finalized: tuple[Block, str],
) -> list[RangeReport]:
    """Scan ``ranges`` (in order) up to ``finalized`` (pinned once per run, with how it was
    chosen). Each report is complete once its range's writes are; a failure raises after every
    batch read before it was written."""
    settings = client.settings
    final, finality = finalized
    reports = [RangeReport(r, final.number, finality) for r in ranges]
    with store.session():
        sizer = RangeSizer(settings.max_range, chain.remembered_range(store))
        recorded = chain.scanned_to(store, ranges)
        starts = [
            _prepare(store, client, report, recorded.get(report.block_range.key), log)
            for report in reports
        ]
    plans = []
    for report, start in zip(reports, starts, strict=True):
        target = min(report.block_range.last, final.number)
        if start <= target:
            report.scanned_from = start
            plans.append((report, start, target))
    pending: list[tuple[RangeReport, Chunk]] = []

    def write() -> None:
        report, last = pending[-1]
        chunks = [chunk for _, chunk in pending]
        report.outcomes += chain.write_chunks(
            store, report.block_range, chunks, sizer.current, run_id
        )
        report.chunks += len(chunks)
        report.events += sum(len(c.resolutions) for c in chunks)
        report.scanned_to = last.last
        pending.clear()

    try:
        read = read_ahead(_chunks(client, plans, sizer), depth=2 * WRITE_CHUNKS)
        for report, chunk, ends in read:
            pending.append((report, chunk))
            full = sum(len(c.resolutions) for _, c in pending) >= WRITE_ROWS
            if full or len(pending) >= WRITE_CHUNKS or ends:
                write()
            if ends:
                log.info(
                    f"{report.block_range.key}: {report.events:,} events in {report.chunks:,} "
                    f"chunks, scanned to {chunk.last:,} (finalized {final.number:,}, {finality})"
                )
    except RpcError:
        if pending:  # what was read before the provider failed is kept: the next run goes on
            write()
        raise
    for report in reports:
        report.rpc_range = sizer.current
    return reports
