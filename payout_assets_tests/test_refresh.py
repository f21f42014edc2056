"""The incremental refresh trusts "unchanged since block N" only where it holds: on the same
subgraph deployment, at a block not behind N. In process, against the simulator over real HTTP.

Why: the refresh asks the subgraph which conditions changed since the previous snapshot's block
and records every other unresolved id as unchanged without asking. Pointed at another deployment
(its own history) or at a block behind the last snapshot (``_change_block`` since N then finds
nothing), that would leave ids unasked on the word of a subgraph that never answered for them.
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from payout_assets.warehouse import tables
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets_tests.conftest import Pipeline
from payout_standins.demo import seed_store
from payout_standins.goldsky import Simulator, SimulatorConfig, run_simulator

pytestmark = pytest.mark.integration


def _ids(store: ClickHouseStore, generation: str, states: tuple[str, ...]) -> set[str]:
    return {
        cid
        for (cid,) in store.query_rows(
            "SELECT input_id FROM payout_backfill.ledger_latest "
            "WHERE generation = {g:String} AND state IN {s:Array(String)}",
            {"g": generation, "s": list(states)},
        )
    }


@pytest.mark.parametrize("change", ["another deployment", "a lower block"])
def test_a_refresh_the_last_snapshot_says_nothing_about_asks_every_id_again(
    pipeline: Pipeline, sim: Simulator, store: ClickHouseStore, change: str
) -> None:
    seed_store(store, sim.universe, 1_500)
    pipeline.snapshot()
    assert pipeline.shard("shard-00").success  # its unresolved / unknown ids are in the ledger
    first = tables.current_snapshot(store)
    still_open = _ids(store, first.generation, ("unresolved", "not_found"))
    assert still_open, "shard-00 should have ids the subgraph has not resolved"

    with ExitStack() as stack:
        if change == "another deployment":  # the same conditions, served by another deployment
            other = stack.enter_context(
                run_simulator(SimulatorConfig(size=5_000, seed=7, deployment="QmOtherDeployment"))
            )
            pipeline.endpoint = other.url
            expected = "deployment changed from QmSimulated to QmOtherDeployment"
        else:
            sim.set_head(first.block_number - 1_000)
            expected = f"lower than the previous snapshot's {first.block_number:,}"
        result = pipeline.snapshot()

    second = tables.current_snapshot(store)
    assert second.generation != first.generation
    assert still_open <= _ids(store, second.generation, ("pending",))
    unasked = store.query_rows(
        "SELECT count() FROM payout_backfill.ledger_latest "
        "WHERE generation = {g:String} AND reason LIKE 'unchanged since%'",
        {"g": second.generation},
    )
    assert unasked == [(0,)]
    (materialization,) = result.asset_materializations_for_node("missing_condition_ids")
    incremental = materialization.metadata["incremental"].value
    assert "full" in incremental and expected in incremental, incremental
    logs = [e.user_message for e in pipeline.instance.all_logs(result.run_id)]
    assert any(expected in message for message in logs), logs
