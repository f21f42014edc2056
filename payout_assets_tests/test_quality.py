"""Data quality you can see: the ledger accounts for every id, bad payouts never reach the
ingest table but show on the Checks tab by id, checks catch what a buggy writer would leave,
and re-runs leave nothing twice."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.execution.api import execute_run

from payout_assets.defs import assets, jobs
from payout_assets.defs.partitions import shard_partitions
from payout_assets.validate import rules
from payout_assets.warehouse import tables
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets_tests.checks_tab import latest_check_executions
from payout_assets_tests.conftest import (
    ALL_ASSETS,
    ALL_CHECKS,
    INGEST_COLUMNS,
    Pipeline,
    check_results,
    write_ids,
)
from payout_standins.goldsky import Simulator

pytestmark = pytest.mark.integration


def _ids(sim: Simulator, n: int) -> list[str]:
    return [sim.universe.condition_id(i).removeprefix("0x") for i in range(n)]


def _shard_of(store: ClickHouseStore, cid: str) -> str:
    (shard,) = store.query_rows(
        "SELECT shard FROM payout_backfill.missing_condition_ids WHERE condition_id = {c:String}",
        {"c": cid},
    )[0]
    return f"shard-{shard:02d}"


def test_corrupted_payouts_are_rejected_by_id_and_never_ingested(
    pipeline: Pipeline, sim: Simulator, tmp_path: Path
) -> None:
    ids = _ids(sim, 2_000)
    bad_sum, huge, single = ids[10], ids[11], ids[12]
    sim.universe.set_override("0x" + bad_sum, ["1", "1"], "3")
    sim.universe.set_override("0x" + huge, [str(2**200), "0"], str(2**200))
    sim.universe.set_override("0x" + single, ["1"], "1")
    pipeline.ids_file = write_ids(tmp_path / "ids.txt", ids)
    pipeline.snapshot()
    results = {k: pipeline.shard(k) for k in shard_partitions.get_partition_keys()}
    assert all(r.success for r in results.values())
    pipeline.view()

    store = pipeline.store
    ingested = {
        r[0]
        for r in store.query_rows(
            "SELECT condition_id FROM default.resolutions_external_ingest FINAL"
        )
    }
    assert not {bad_sum, huge, single} & ingested
    reasons = dict(
        store.query_rows(
            "SELECT input_id, reason FROM payout_backfill.ledger_latest WHERE state = 'rejected'"
        )
    )
    assert reasons == {
        bad_sum: "numerator_sum_equals_denominator",
        huge: "numerators_fit_uint64, denominator_positive_uint64",
        single: "at_least_two_outcomes",
    }
    # The Checks tab names the rejected id, in the run of the shard it belongs to.
    evaluation = check_results(results[_shard_of(store, bad_sum)])[
        ("goldsky_payouts", "rejected_share")
    ]
    assert bad_sum in evaluation.metadata["rejected_sample"].value
    snapshot = tables.current_snapshot(store)
    counts = tables.state_counts(store, snapshot.generation)
    assert counts["rejected"] == 3
    assert sum(counts.values()) == snapshot.distinct_ids == len(ids)


def test_rejected_share_above_threshold_blocks_the_ingest(
    pipeline: Pipeline, sim: Simulator, tmp_path: Path, monkeypatch
) -> None:
    ids = _ids(sim, 400)
    pipeline.ids_file = write_ids(tmp_path / "ids.txt", ids)
    for cid in ids[:200]:
        sim.universe.set_override("0x" + cid, ["2", "2"], "3")
    monkeypatch.setenv("PAYOUT_MAX_REJECTED_SHARE", "0.01")
    pipeline.snapshot()
    result = pipeline.shard("shard-00")
    assert not result.success  # the blocking check failed, so the ingest did not run
    evaluation = check_results(result)[("goldsky_payouts", "rejected_share")]
    assert not evaluation.passed
    assert (
        pipeline.store.query_rows("SELECT count() FROM default.resolutions_external_ingest")[0][0]
        == 0
    )


def test_checks_catch_invalid_rows_a_buggy_writer_left(
    pipeline: Pipeline, sim: Simulator, tmp_path: Path
) -> None:
    pipeline.ids_file = write_ids(tmp_path / "ids.txt", _ids(sim, 300))
    pipeline.snapshot()
    assert pipeline.shard("shard-00").success
    store = pipeline.store
    ((run_id, generation),) = store.query_file("ingest/latest_run.sql", {"shard": 0})
    # Simulate a writer bug: a resolved row whose numerators do not sum to its denominator,
    # and a second copy of an id.
    row = (0, run_id, generation, "f" * 64, "resolved", "", [1, 1], 3, -1, None, ["1", "1"], "3", 1)
    tables.stage_rows(store, [(*row, tables.now_utc()), (*row, tables.now_utc())])
    result = dg.materialize(
        [assets.goldsky_payouts],
        selection=dg.AssetSelection.checks_for_assets(assets.goldsky_payouts),
        tags={"dagster/partition": "shard-00"},
        resources=pipeline.resources(),
        instance=pipeline.instance,
        raise_on_error=False,
    )
    evaluations = check_results(result)
    sums = evaluations[("goldsky_payouts", "numerator_sums")]
    assert not sums.passed
    assert "f" * 64 in sums.metadata["failure_sample"].value
    assert not evaluations[("goldsky_payouts", "unique_condition_ids")].passed


def _view(store: ClickHouseStore) -> list[tuple]:
    return store.query_rows(
        "SELECT * FROM cascadian_clean.vw_resolutions_truth ORDER BY condition_id"
    )


def test_rerunning_shards_changes_nothing_and_duplicates_nothing(
    pipeline: Pipeline, sim: Simulator, tmp_path: Path
) -> None:
    pipeline.ids_file = write_ids(tmp_path / "ids.txt", _ids(sim, 1_500))
    pipeline.backfill()
    store = pipeline.store
    before = _view(store)
    for _ in range(3):
        assert pipeline.shard("shard-00").success
        assert pipeline.shard("shard-05").success
    pipeline.view()
    assert _view(store) == before
    for table in (
        "default.resolutions_external_ingest FINAL",
        "cascadian_clean.vw_resolutions_truth",
    ):
        rows, distinct = store.query_rows(f"SELECT count(), uniqExact(condition_id) FROM {table}")[
            0
        ]
        assert rows == distinct, table
    snapshot = tables.current_snapshot(store)
    rows, distinct = store.query_rows(
        "SELECT count(), uniqExact(input_id) FROM payout_backfill.ledger_latest WHERE generation = {g:String}",
        {"g": snapshot.generation},
    )[0]
    assert rows == distinct == snapshot.distinct_ids
    staged_runs = store.query_rows(
        "SELECT shard, uniqExact(run_id) FROM payout_backfill.goldsky_payouts GROUP BY shard"
    )
    assert all(n == 1 for _, n in staged_runs)  # each re-run replaced its shard's rows

    # The view's merges left parts outdated; the next backfill has the store delete them first.
    outdated = set(store.query_rows(_OUTDATED))
    assert outdated
    assert pipeline.snapshot().success
    assert not outdated & set(store.query_rows(_OUTDATED))


_OUTDATED = "SELECT database, table, name FROM system.parts WHERE NOT active"


def test_verify_reports_pass_then_fails_on_a_corrupted_table(
    pipeline: Pipeline, sim: Simulator, tmp_path: Path
) -> None:
    from payout_assets.cli.verify import verify

    pipeline.ids_file = write_ids(tmp_path / "ids.txt", _ids(sim, 1_200))
    pipeline.backfill()
    store = pipeline.store
    results = {r.name: r for r in verify(store)}
    assert {r.status for r in results.values()} <= {"PASS", "WARN"}, {
        n: r.summary for n, r in results.items()
    }
    assert len(results) == 11

    # The same rules as the view's checks: verify and the Checks tab agree.
    view_checks = check_results(pipeline.view())
    for (asset, name), evaluation in view_checks.items():
        assert asset == "vw_resolutions_truth"
        assert evaluation.passed == results[name].passed, name

    # A row a broken writer could leave: wrong sum, outside FINAL's dedup.
    store.insert(
        "default.resolutions_external_ingest",
        [("e" * 64, [2, 0], 1, 0, None, "goldsky", 1, tables.now_utc(), "bad-run", 1)],
        INGEST_COLUMNS,
    )
    results = {r.name: r for r in verify(store)}
    assert results["numerator_sums"].status == "FAIL"
    assert "e" * 64 in results["numerator_sums"].metadata["failure_sample"]
    assert results["winning_index_bounds"].status == "FAIL"


def test_ledger_check_names_a_pending_id_the_ledger_lost(
    pipeline: Pipeline, sim: Simulator, tmp_path: Path
) -> None:
    pipeline.ids_file = write_ids(tmp_path / "ids.txt", _ids(sim, 1_500))
    pipeline.snapshot()
    store = pipeline.store
    before = rules.ledger_accounts(store, final=False)
    assert before.passed, before.summary
    assert before.metadata["missing_ids_without_a_state"] == 0

    # A writer that forgot one id: it is in missing_condition_ids but has no ledger row.
    (lost,) = store.query_rows(
        "SELECT condition_id FROM payout_backfill.missing_condition_ids ORDER BY condition_id "
        "LIMIT 1"
    )[0]
    store.query_rows(
        "ALTER TABLE payout_backfill.id_ledger DELETE WHERE input_id = {c:String} "
        "SETTINGS mutations_sync = 2",
        {"c": lost},
    )
    after = rules.ledger_accounts(store, final=False)
    assert not after.passed
    assert after.metadata["missing_ids_without_a_state"] == 1
    assert after.metadata["ids_with_a_state"] == before.metadata["ids_with_a_state"] - 1


def test_checks_tab_shows_each_shards_results_whatever_order_the_shards_finish(
    pipeline: Pipeline, sim: Simulator, tmp_path: Path
) -> None:
    """Parallel shard runs are created in one order and finish in another. The Checks tab
    (``executionForLatestMaterialization``, read here with the page's own GraphQL query) must
    still show every check of both partitioned assets as evaluated, not "Not Evaluated"."""
    pipeline.ids_file = write_ids(tmp_path / "ids.txt", _ids(sim, 400))
    pipeline.snapshot()
    job = dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=[jobs.backfill_shard],
        resources=pipeline.resources(),
        executor=dg.in_process_executor,
    ).resolve_job_def("backfill_shard")
    keys = shard_partitions.get_partition_keys()[:2]
    runs = [pipeline.instance.create_run_for_job(job, tags={"dagster/partition": k}) for k in keys]
    for run in reversed(runs):  # the run created last finishes first
        result = execute_run(InMemoryJob(job), run, pipeline.instance)
        assert result.success, run.tags

    for asset in (assets.goldsky_payouts, assets.resolutions_external_ingest):
        name = asset.key.to_user_string()
        shown = latest_check_executions(pipeline.instance, name)
        assert set(shown) == {spec.name for spec in asset.check_specs}, shown
        for check, execution in shown.items():
            assert execution is not None, f"{name}.{check} shows Not Evaluated"
            assert execution["status"] == "SUCCEEDED", (name, check, execution)
            assert execution["runId"] in {r.run_id for r in runs}, (name, check, execution)
