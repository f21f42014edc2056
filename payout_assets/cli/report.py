"""What a backfill did, read back from ClickHouse (the ledger), never from memory."""

from __future__ import annotations

from collections.abc import Mapping

from payout_assets.warehouse import tables
from payout_assets.warehouse.store import ClickHouseStore

# (state, label, shown even when zero): the final states always, transitional ones when present.
STATE_ORDER = [
    ("invalid_id", "invalid", True),
    ("already_resolved", "already resolved", True),
    ("ingested", "resolved and ingested", True),
    ("unresolved", "unresolved", True),
    ("not_found", "not found", True),
    ("rejected", "rejected", True),
    ("failed", "failed", False),
    ("fetched", "fetched, not yet ingested", False),
    ("pending", "pending (shard not run)", False),
]


# States that mean an id still has to be fetched (or fetched again): a backfill that leaves any
# id in one of them has not done what it was asked.
OPEN_STATES = {
    "pending": "pending (never fetched)",
    "fetched": "fetched, not yet ingested",
    "failed": "failed",
}


def open_ids(counts: Mapping[str, int]) -> dict[str, int]:
    """The ids of the current snapshot that are still open, by state (empty when none is)."""
    return {state: counts[state] for state in OPEN_STATES if counts.get(state)}


def open_ids_line(still_open: Mapping[str, int]) -> str:
    """One line for the terminal: how many ids are open, in which states, and what to do."""
    parts = ", ".join(f"{n:,} {OPEN_STATES[s]}" for s, n in still_open.items())
    return (
        f"{sum(still_open.values()):,} ids of the current snapshot are still open ({parts}): "
        "run `payout-backfill run` again to fetch them; `payout-backfill status` shows which "
        "shards hold them"
    )


def ledger_counts(store: ClickHouseStore) -> tuple[str | None, dict[str, int]]:
    snapshot = tables.current_snapshot(store)
    if snapshot is None:
        return None, {}
    return snapshot.generation, tables.state_counts(store, snapshot.generation)


def render_table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    vwidth = max(len(v) for _, v in rows)
    line = f"+-{'-' * width}-+-{'-' * vwidth}-+"
    body = [f"| {k:<{width}} | {v:>{vwidth}} |" for k, v in rows]
    return "\n".join([line, *body, line])


def summary_rows(
    counts: Mapping[str, int], extra: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    rows = [("ids in (distinct)", f"{sum(counts.values()):,}")]
    rows += [
        (label, f"{counts.get(state, 0):,}")
        for state, label, always in STATE_ORDER
        if always or counts.get(state)
    ]
    rows += list((extra or {}).items())
    return rows
