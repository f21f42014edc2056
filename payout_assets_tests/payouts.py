"""The payouts a backfill must land, read from the simulator, and the payouts it landed."""

from __future__ import annotations

from collections.abc import Sequence

from payout_assets.warehouse import tables
from payout_assets.warehouse.store import ClickHouseStore
from payout_standins.goldsky import Simulator


def expected_payouts(
    sim: Simulator, ids: Sequence[str], block: int
) -> dict[str, tuple[list[int], int]]:
    """What the subgraph says each resolved id's payout is as of ``block`` (pnl dialect)."""
    out: dict[str, tuple[list[int], int]] = {}
    for cid in ids:
        state = sim.universe.state("0x" + cid, block)
        if state is not None and state.resolved:
            out[cid] = ([int(n) for n in state.numerators or ()], int(state.denominator or 0))
    return out


def snapshot_payouts(sim: Simulator, store: ClickHouseStore) -> dict[str, tuple[list[int], int]]:
    """:func:`expected_payouts` for the ids the store's snapshot asked, at its pinned block."""
    snapshot = tables.current_snapshot(store)
    assert snapshot is not None
    asked = [
        r[0]
        for r in store.query_rows("SELECT condition_id FROM payout_backfill.missing_condition_ids")
    ]
    return expected_payouts(sim, asked, snapshot.block_number)


def ingested(store: ClickHouseStore) -> dict[str, tuple[list[int], int]]:
    """``default.resolutions_external_ingest`` as the people who use it read it (FINAL)."""
    return {
        cid: (list(nums), int(den))
        for cid, nums, den in store.query_rows(
            "SELECT condition_id, payout_numerators, payout_denominator "
            "FROM default.resolutions_external_ingest FINAL"
        )
    }
