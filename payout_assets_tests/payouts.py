"""The payouts a backfill must land, read from the simulator, and the payouts it landed."""

from __future__ import annotations

from payout_assets.warehouse import tables
from payout_assets.warehouse.store import ClickHouseStore
from payout_standins.goldsky import Simulator


def expected_payouts(sim: Simulator, store: ClickHouseStore) -> dict[str, tuple[list[int], int]]:
    """Resolved payouts the subgraph has, at the pinned block, for the ids the backfill asked."""
    snapshot = tables.current_snapshot(store)
    assert snapshot is not None
    asked = [
        r[0]
        for r in store.query_rows("SELECT condition_id FROM payout_backfill.missing_condition_ids")
    ]
    out = {}
    for cid in asked:
        state = sim.universe.state("0x" + cid, snapshot.block_number)
        if state is not None and state.resolved:
            out[cid] = ([int(n) for n in state.numerators or ()], int(state.denominator or 0))
    return out


def ingested_payouts(store: ClickHouseStore) -> dict[str, tuple[list[int], int]]:
    rows = store.query_rows(
        "SELECT condition_id, payout_numerators, payout_denominator "
        "FROM default.resolutions_external_ingest FINAL"
    )
    return {cid: (list(n), d) for cid, n, d in rows}
