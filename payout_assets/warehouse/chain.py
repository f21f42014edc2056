"""The chain source's tables: each scanned chunk's rows, then its checkpoint, in that order.

A run killed between the two leaves rows past the checkpoint; the next run deletes them before it
continues (``rewind``), so a range is never read into the table twice or left with a gap.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from payout_assets.sources.polygon.events import ChainResolution
from payout_assets.sources.polygon.rows import COLUMNS, to_rows
from payout_assets.sources.polygon.scan import Chunk
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets.warehouse.tables import new_version, now_utc

RESOLUTIONS = "payout_backfill.polygon_resolutions"
CHUNKS = "payout_backfill.polygon_scan_chunks"
CHUNK_COLUMNS = (
    "block_range",
    "first_block",
    "last_block",
    "last_hash",
    "events",
    "rpc_range",
    "run_id",
    "recorded_at",
)


@dataclass(frozen=True)
class BlockRange:
    """One partition of the scan: blocks ``first..last``, keyed ``000004023686-000004999999``."""

    first: int
    last: int

    @property
    def key(self) -> str:
        return f"{self.first:012d}-{self.last:012d}"

    @classmethod
    def from_key(cls, key: str) -> BlockRange:
        first, sep, last = key.partition("-")
        if not (sep and first.isdigit() and last.isdigit()) or int(first) > int(last):
            raise ValueError(f"not a block range partition key: {key!r} (expected FIRST-LAST)")
        return cls(int(first), int(last))


def block_ranges(start_block: int, up_to: int, size: int) -> list[BlockRange]:
    """The partitions covering ``start_block..up_to``: windows of ``size`` blocks aligned to
    multiples of ``size`` (the first one starts at ``start_block``), so the keys never change as
    the chain grows; the newest window is open (its end is beyond ``up_to``)."""
    if up_to < start_block:
        return []
    out = []
    window = start_block // size
    while window * size <= up_to:
        out.append(BlockRange(max(start_block, window * size), (window + 1) * size - 1))
        window += 1
    return out


def scanned_to(store: ClickHouseStore, ranges: Sequence[BlockRange]) -> dict[str, int]:
    """Each range's checkpoint (the last block of its newest chunk), by key; a range whose scan
    never wrote a chunk is absent."""
    rows = store.query_file("polygon/progress.sql", {"block_ranges": [r.key for r in ranges]})
    return {str(key): int(last) for key, last in rows}


def hashed_ends(store: ClickHouseStore, block_range: BlockRange) -> list[tuple[int, str]]:
    rows = store.query_file("polygon/hashed_chunks.sql", {"block_range": block_range.key})
    return [(int(n), str(h)) for n, h in rows]


def remembered_range(store: ClickHouseStore) -> int:
    """The eth_getLogs range that worked last time (0 when the scan never ran)."""
    rows = store.query_file("polygon/remembered_range.sql")
    return int(rows[0][0]) if rows and rows[0][0] else 0


def rewind(
    store: ClickHouseStore, block_range: BlockRange, after: int | None, recorded_to: int | None
) -> int:
    """Drop the range's rows and checkpoints past ``after`` (all of them for None); returns the
    rows deleted. ``recorded_to`` is the range's checkpoint. Deletes run only when there is
    something to delete: each is a mutation."""
    point = block_range.first - 1 if after is None else after
    bounds = {"after": point, "last": block_range.last}
    with store.session():
        ((stale,),) = store.query_file("polygon/rows_after.sql", bounds)
        if stale:
            store.run_file("polygon/delete_rows_after.sql", bounds)
        if recorded_to is not None and recorded_to > point:
            store.run_file(
                "polygon/delete_chunks_after.sql", {"block_range": block_range.key, "after": point}
            )
    return int(stale)


def write_chunks(
    store: ClickHouseStore,
    block_range: BlockRange,
    chunks: Sequence[Chunk],
    rpc_range: int,
    run_id: str,
) -> Counter[str]:
    """The chunks' rows (and the deletion of rows for logs marked removed), then their
    checkpoints, in one engine session; returns the rows written by outcome."""
    events = [e for c in chunks for e in c.resolutions]
    removed = [e for c in chunks for e in c.removed]
    rows = to_rows(events, block_range.key, run_id, new_version())
    now = now_utc()
    with store.session():
        if removed:
            store.run_file("polygon/delete_removed.sql", {"removed": _keys(removed)})
        store.insert(RESOLUTIONS, rows, COLUMNS)
        store.insert(
            CHUNKS,
            [
                (
                    block_range.key,
                    c.first,
                    c.last,
                    c.last_hash,
                    len(c.resolutions),
                    rpc_range,
                    run_id,
                    now,
                )
                for c in chunks
            ],
            CHUNK_COLUMNS,
        )
    return Counter(row[1] for row in rows)


def _keys(events: Sequence[ChainResolution]) -> list[tuple[str, int]]:
    return [(e.block_hash, e.log_index) for e in events]


def scan_status(store: ClickHouseStore) -> dict[str, int]:
    ((ranges, blocks, first, last, events),) = store.query_file("polygon/scan_status.sql")
    return {
        "ranges": int(ranges),
        "blocks_covered": int(blocks),
        "first_block": int(first),
        "last_block": int(last),
        "events": int(events),
    }


def scan_gaps(store: ClickHouseStore) -> list[tuple[str, int, int, int]]:
    rows = store.query_file("checks/scan_gaps.sql")
    return [(str(r), int(a), int(b), int(p)) for r, a, b, p in rows]


def disagreement_count(store: ClickHouseStore) -> int:
    """Rows of payout_backfill.source_disagreements: pairs of sources that disagree."""
    ((count,),) = store.query_file("checks/disagreement_count.sql")
    return int(count)


def resolved_by(store: ClickHouseStore, generation: str) -> dict[str, int]:
    """The generation's ids by the source that resolved them ('' = none yet)."""
    rows = store.query_file("checks/resolved_by.sql", {"generation": generation})
    return {str(source): int(n) for source, n in rows}
