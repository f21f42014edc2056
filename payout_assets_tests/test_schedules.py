"""Newly resolved markets arrive on their own: the hourly schedule → shards → view chain, driven
through the real schedule and sensors against a real instance, with an incremental second hour."""

from __future__ import annotations

import dagster as dg
import pytest

from payout_assets.definitions import defs as project_defs
from payout_assets.defs import schedules
from payout_assets.defs.jobs import backfill_shard, publish_truth_view, refresh_missing_ids
from payout_assets.warehouse import tables
from payout_assets_tests.conftest import ALL_ASSETS, ALL_CHECKS, Pipeline
from payout_standins.demo import seed_store
from payout_standins.goldsky import Simulator

pytestmark = pytest.mark.integration


def _definitions(pipeline: Pipeline) -> dg.Definitions:
    return dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=[refresh_missing_ids, backfill_shard, publish_truth_view],
        resources=pipeline.resources(),
        executor=dg.in_process_executor,
    )


def _success_event(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterEvent:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_SUCCESS).records
    return records[0].event_log_entry.dagster_event


def _sensor(
    sensor: dg.RunStatusSensorDefinition, instance: dg.DagsterInstance, run: dg.DagsterRun
) -> list:
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=_success_event(instance, run.run_id),
    )
    result = sensor(context)
    if result is None or isinstance(result, dg.SkipReason):
        return []
    return [result] if isinstance(result, dg.RunRequest) else list(result)


def _hour(pipeline: Pipeline, defs: dg.Definitions) -> dict[str, int]:
    """One scheduled cycle; returns how many runs each step requested."""
    instance = pipeline.instance
    with dg.build_schedule_context(instance=instance) as context:
        request = schedules.hourly_refresh.evaluate_tick(context).run_requests[0]
    refresh = defs.resolve_job_def("refresh_missing_ids").execute_in_process(
        instance=instance, tags=request.tags
    )
    shard_requests = _sensor(schedules.shards_after_refresh, instance, refresh.dagster_run)
    view_requests = []
    for shard_request in shard_requests:
        result = defs.resolve_job_def("backfill_shard").execute_in_process(
            instance=instance, partition_key=shard_request.partition_key, tags=shard_request.tags
        )
        assert result.success
        view_requests += _sensor(schedules.view_after_shards, instance, result.dagster_run)
    for view_request in view_requests:
        defs.resolve_job_def("publish_truth_view").execute_in_process(
            instance=instance, tags=view_request.tags
        )
    return {"shards": len(shard_requests), "views": len(view_requests)}


def test_schedule_and_sensors_start_running_by_default() -> None:
    loaded = project_defs() if callable(project_defs) else project_defs
    assert (
        loaded.resolve_schedule_def("hourly_refresh").default_status
        == dg.DefaultScheduleStatus.RUNNING
    )
    for name in ("shards_after_refresh", "view_after_shards"):
        assert loaded.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING


def test_hourly_chain_lands_new_resolutions_and_asks_only_what_changed(
    pipeline: Pipeline, sim: Simulator, store
) -> None:
    seed_store(store, sim.universe, 3_000)
    defs = _definitions(pipeline)

    assert _hour(pipeline, defs) == {"shards": 8, "views": 1}
    first = tables.current_snapshot(store)
    ingested_first = store.query_rows(
        "SELECT count() FROM default.resolutions_external_ingest FINAL"
    )[0][0]
    unresolved_first = tables.state_counts(store, first.generation)["unresolved"]
    assert ingested_first > 0 and unresolved_first > 0

    # An hour later the chain head has moved on: some unresolved markets resolved meanwhile.
    sim.set_head(first.block_number + sim.universe.future_blocks)
    served_before = sim.traffic.stats()["ids_served"]
    assert _hour(pipeline, defs) == {"shards": 8, "views": 1}
    second = tables.current_snapshot(store)
    assert second.block_number > first.block_number

    newly = [
        cid
        for (cid,) in store.query_rows(
            "SELECT input_id FROM payout_backfill.ledger_latest WHERE generation = {g:String} AND state = 'pending'",
            {"g": first.generation},
        )
    ]
    assert not newly  # the first hour finished every id
    ingested = {
        r[0]
        for r in store.query_rows(
            "SELECT condition_id FROM default.resolutions_external_ingest FINAL"
        )
    }
    expected_new = {
        cid
        for (cid,) in store.query_rows(
            "SELECT input_id FROM payout_backfill.ledger_latest WHERE generation = {g:String} AND state = 'unresolved'",
            {"g": first.generation},
        )
        if (state := sim.universe.state("0x" + cid, second.block_number)) is not None
        and state.resolved
    }
    assert expected_new, "the simulator should resolve some markets as the head advances"
    assert expected_new <= ingested  # landed without anyone touching anything
    view = {
        r[0]
        for r in store.query_rows("SELECT condition_id FROM cascadian_clean.vw_resolutions_truth")
    }
    assert expected_new <= view

    # Incremental: only conditions changed since the first snapshot were asked again, and the
    # ids left unasked are still accounted for in the ledger.
    asked_again = sim.traffic.stats()["ids_served"] - served_before
    assert 0 < asked_again < unresolved_first
    counts = tables.state_counts(store, second.generation)
    assert sum(counts.values()) == second.distinct_ids
    assert "pending" not in counts and "fetched" not in counts
