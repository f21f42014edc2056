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
from payout_assets.sources.polygon.scan import (
    RangeSizer,
    blocks,
    finalized_block,
    scan,
)
from payout_assets.warehouse import chain
from payout_assets.warehouse.chain import BlockRange
from payout_assets.warehouse.store import ClickHouseStore


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
) -> RangeReport:
    settings = client.settings
    final, finality = finalized_block(client)
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
        for chunk in scan(client, settings.ctf_address, start, target, sizer):
            chain.write_chunk(store, block_range, chunk, sizer.current, run_id)
            report.chunks += 1
            report.events += len(chunk.resolutions)
            report.scanned_to = chunk.last
    else:
        report.scanned_to = done
    report.rpc_range = sizer.current
    report.outcomes = chain.range_summary(store, block_range)
    return report
