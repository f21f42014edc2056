"""One block range of the chain scan, from its checkpoint to the finalized block.

* Never past the finalized block pinned at the start of the run.
* A range scanned before is continued after its checkpoint, once the checkpoint's block hash is
  confirmed; a changed hash (a reorg) rewinds to the newest checkpoint that still holds.
* A range already complete is scanned again from its start: that is what re-materialising it
  (a UI backfill over old ranges) asks for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from payout_assets.sources.polygon.rpc import RpcClient
from payout_assets.sources.polygon.scan import Block, Chunk, RangeSizer, blocks, scan
from payout_assets.warehouse import chain
from payout_assets.warehouse.chain import BlockRange
from payout_assets.warehouse.store import ClickHouseStore

# A write (one engine session, one pandera frame, one checkpoint) per batch of ranges, or sooner
# at this many events: a killed run reads at most one batch again.
WRITE_ROWS = 5_000


@dataclass
class RangeReport:
    block_range: BlockRange
    finalized: int
    finality: str
    scanned_from: int | None = None  # None: nothing new to read
    scanned_to: int | None = None
    chunks: int = 0
    events: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
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


def scan_block_range(
    store: ClickHouseStore,
    client: RpcClient,
    block_range: BlockRange,
    run_id: str,
    log: logging.Logger,
    finalized: tuple[Block, str],
) -> RangeReport:
    """Scan ``block_range`` up to ``finalized`` (pinned once per run, with how it was chosen)."""
    settings = client.settings
    final, finality = finalized
    report = RangeReport(block_range, final.number, finality)
    done = chain.scanned_to(store, block_range)
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
    report.stale_rows_deleted = chain.rewind(store, block_range, done)
    start = block_range.first if done is None else done + 1
    target = min(block_range.last, final.number)
    sizer = RangeSizer(settings.max_range, chain.remembered_range(store))
    if start <= target:
        report.scanned_from = start
        # only a range the scan leaves open is continued later: its end's hash is what the next
        # run checks for a reorg; a complete range is scanned anew if ever asked again
        chunks = scan(
            client, settings.ctf_address, start, target, sizer, hash_end=target < block_range.last
        )
        pending: list[Chunk] = []
        for chunk in chunks:
            pending.append(chunk)
            full = sum(len(c.resolutions) for c in pending) >= WRITE_ROWS
            if full or len(pending) >= settings.calls_per_batch or chunk.last == target:
                chain.write_chunks(store, block_range, pending, sizer.current, run_id)
                report.chunks += len(pending)
                report.events += sum(len(c.resolutions) for c in pending)
                report.scanned_to = chunk.last
                pending = []
    else:
        report.scanned_to = done
    report.rpc_range = sizer.current
    report.outcomes = chain.range_summary(store, block_range)
    return report
