"""ConditionResolution events as rows of ``payout_backfill.polygon_resolutions``.

Integers stay integers: the uint256 numerators are kept exactly as decimal text
(``raw_numerators``) and go into the UInt64 columns only when the pandera model (the same
``PayoutRow`` the subgraph's rows pass) accepts them; otherwise the row is ``rejected`` with the
rules it breaks, and no payout.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from payout_assets.sources.polygon.events import ChainResolution
from payout_assets.validate.payouts import DATETIME_MAX, MAX_OUTCOMES, winning_index

COLUMNS = (
    "condition_id",
    "outcome",
    "reason",
    "payout_numerators",
    "payout_denominator",
    "winning_index",
    "resolved_at",
    "raw_numerators",
    "outcome_slot_count",
    "oracle",
    "question_id",
    "block_number",
    "block_hash",
    "tx_hash",
    "log_index",
    "block_range",
    "run_id",
    "version",
)


def _resolved_at(event: ChainResolution) -> datetime:
    seconds = min(event.block_timestamp or 0, DATETIME_MAX)
    return datetime.fromtimestamp(seconds, tz=UTC)


def to_rows(
    events: Sequence[ChainResolution], block_range: str, run_id: str, version: int
) -> list[tuple[Any, ...]]:
    """One row per event, validated as a batch (one pandera frame per 5,000 events)."""
    records = [
        {
            "condition_id": e.condition_id,
            "payout_numerators": list(e.numerators),
            "payout_denominator": e.denominator,
            "winning_index": winning_index(e.numerators, e.denominator),
            "resolved_at": _resolved_at(e),
        }
        for e in events
    ]
    # pandera (and pandas) load here, not at import: the CLI imports this module and never builds rows
    from payout_assets.validate.schema import rule_failures

    failures = rule_failures(records)
    rows = []
    for position, (e, record) in enumerate(zip(events, records, strict=True)):
        broken = failures.get(position, [])
        ok = not broken
        rows.append(
            (
                e.condition_id,
                "resolved" if ok else "rejected",
                ", ".join(broken),
                record["payout_numerators"] if ok else [],
                e.denominator if ok else 0,
                record["winning_index"] if ok else -1,
                record["resolved_at"],
                [str(n) for n in e.numerators[:MAX_OUTCOMES]],
                min(e.outcome_slot_count, 65_535),
                e.oracle,
                e.question_id,
                e.block_number,
                e.block_hash,
                e.tx_hash,
                e.log_index,
                block_range,
                run_id,
                version,
            )
        )
    return rows
