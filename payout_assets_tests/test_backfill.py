"""The backfill end to end, in process: real assets, embedded ClickHouse, simulator over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from payout_assets.warehouse import tables
from payout_assets_tests.conftest import Pipeline, check_results, write_ids
from payout_assets_tests.payouts import expected_payouts
from payout_standins.demo import seed_store
from payout_standins.goldsky import Simulator

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("slice_ids", [tables.SLICE_IDS, 97], ids=["one-slice", "97-id-slices"])
def test_backfill_lands_exactly_the_resolved_payouts(
    pipeline: Pipeline,
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    slice_ids: int,
) -> None:
    """With the default slice size every shard run here is one slice; with 97 ids a slice,
    each is cut into about ten, and the result must be the same, row for row."""
    monkeypatch.setattr(tables, "SLICE_IDS", slice_ids)  # the publish and the ingest
    known = [sim.universe.condition_id(i).removeprefix("0x") for i in range(3_000)]
    unknown = [sim.universe.unknown_id(j).removeprefix("0x") for j in range(150)]
    invalid = ["", "0x12", "nothex" * 11, "  ", "0x" + "g" * 64]
    spelled = [
        "0x" + known[0].upper(),
        "  " + known[1] + "\t",
        known[2],
    ]  # duplicates in other spellings
    pipeline.ids_file = write_ids(tmp_path / "ids.txt", known + unknown + invalid + spelled)

    results = pipeline.backfill()

    store = pipeline.store
    snapshot = tables.current_snapshot(store)
    assert snapshot is not None
    expected = expected_payouts(sim, known, snapshot.block_number)
    got = {
        cid: (list(nums), den)
        for cid, nums, den in store.query_rows(
            "SELECT condition_id, payout_numerators, payout_denominator FROM default.resolutions_external_ingest FINAL"
        )
    }
    assert got == expected
    assert 0.6 < len(expected) / len(known) < 0.9  # the simulator's ~75% resolved share

    counts = tables.state_counts(store, snapshot.generation)
    assert counts == {
        "ingested": len(expected),
        "unresolved": len(known) - len(expected),
        "not_found": len(unknown),
        "invalid_id": 3,  # "" and "  " are blank lines, skipped before they enter
    }
    assert sum(counts.values()) == snapshot.distinct_ids

    split = store.query_rows(
        "SELECT count() FROM default.resolutions_external_ingest FINAL WHERE winning_index = -1"
    )[0][0]
    assert split == sum(1 for nums, den in expected.values() if nums == [1, 1] and den == 2) > 0
    nulls = store.query_rows(
        "SELECT countIf(resolved_at IS NULL), count() FROM default.resolutions_external_ingest"
    )
    assert nulls[0][0] == nulls[0][1]  # pnl-subgraph has no timestamp: never the fetch time

    rows, distinct = store.query_rows(
        "SELECT count(), uniqExact(condition_id) FROM cascadian_clean.vw_resolutions_truth"
    )[0]
    assert rows == distinct == len(expected)

    # The checks read every id of every shard run once, however the runs are sliced.
    evaluations = [check_results(r) for r in results]
    assert all(e.passed for checks in evaluations for e in checks.values())

    def total(asset: str, check: str, key: str) -> int:
        return sum(checks[(asset, check)].metadata[key].value for checks in evaluations)

    fetched = len(known) + len(unknown)
    assert total("goldsky_payouts", "unique_condition_ids", "rows") == fetched
    assert total("goldsky_payouts", "unique_condition_ids", "distinct_ids") == fetched
    assert total("goldsky_payouts", "numerator_sums", "rows_checked") == len(expected)
    assert total("resolutions_external_ingest", "numerator_sums", "rows_checked") == len(expected)
    assert total("resolutions_external_ingest", "unique_after_dedup", "rows_final") == len(expected)

    stats = sim.traffic.stats()
    assert stats["max_first"] <= 1000
    assert stats["ids_requested"] == stats["ids_requested_distinct"] == len(known) + len(unknown)
    assert stats["collection_queries_without_first"] == 0


def test_primary_source_wins_and_is_not_fetched(pipeline: Pipeline, sim: Simulator, store) -> None:
    primary = seed_store(store, sim.universe, 2_000, primary_share=0.2)
    assert primary > 0
    view = pipeline.backfill()
    assert view
    rows = dict(
        store.query_rows(
            "SELECT source, count() FROM cascadian_clean.vw_resolutions_truth GROUP BY source"
        )
    )
    assert rows["market_resolutions_final"] == primary
    fetched = store.query_rows(
        "SELECT count() FROM payout_backfill.goldsky_payouts AS g "
        "WHERE g.condition_id IN (SELECT toString(condition_id_norm) FROM default.market_resolutions_final)"
    )[0][0]
    assert fetched == 0
    dup = store.query_rows(
        "SELECT count() - uniqExact(condition_id) FROM cascadian_clean.vw_resolutions_truth"
    )[0][0]
    assert dup == 0


def test_checks_pass_on_clean_data(pipeline: Pipeline, sim: Simulator, store) -> None:
    seed_store(store, sim.universe, 1_500)
    pipeline.snapshot()
    result = pipeline.shard("shard-00")
    assert result.success
    evaluations = check_results(result)
    for name in (
        "numerator_sums",
        "winning_index_bounds",
        "unique_condition_ids",
        "rejected_share",
    ):
        assert evaluations[("goldsky_payouts", name)].passed, name
    for name in (
        "numerator_sums",
        "winning_index_bounds",
        "unique_after_dedup",
        "canonical_condition_ids",
    ):
        assert evaluations[("resolutions_external_ingest", name)].passed, name
