"""The code location as Dagster loads it, and the refresh chain's decisions, without running
anything: a definitions snapshot, the schedule and the sensors on Dagster's own test contexts."""

from __future__ import annotations

import dagster as dg
import pytest

from payout_assets.definitions import defs
from payout_assets.defs import assets, schedules
from payout_assets.defs.partitions import shard_partitions, shard_partitions_def

MISSION = ["missing_condition_ids", "goldsky_payouts", "resolutions_external_ingest"]


@pytest.fixture(scope="module")
def definitions() -> dg.Definitions:
    return defs()


def test_the_mission_graph_loads_with_its_lineage_and_shards(definitions: dg.Definitions) -> None:
    graph = definitions.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {*MISSION, "vw_resolutions_truth", "polygon_condition_resolutions"}
    chain = dg.AssetKey("polygon_condition_resolutions")
    assert chain in graph.get(dg.AssetKey("vw_resolutions_truth")).parent_keys
    assert isinstance(graph.get(chain).partitions_def, dg.DynamicPartitionsDefinition)
    for upstream, downstream in zip(MISSION, [*MISSION[1:], "vw_resolutions_truth"], strict=True):
        assert dg.AssetKey(upstream) in graph.get(dg.AssetKey(downstream)).parent_keys
    payouts = graph.get(dg.AssetKey("goldsky_payouts"))
    assert payouts.partitions_def == shard_partitions
    assert shard_partitions.get_partition_keys()[0] == "shard-00"


def test_every_asset_says_what_it_is_who_owns_it_and_what_it_runs_on(
    definitions: dg.Definitions,
) -> None:
    graph = definitions.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description and node.owners and node.kinds, key


def test_each_asset_has_its_checks(definitions: dg.Definitions) -> None:
    graph = definitions.resolve_asset_graph()
    checked = {check.asset_key.to_user_string() for check in graph.asset_check_keys}
    assert checked == {*MISSION, "vw_resolutions_truth", "polygon_condition_resolutions"}


def test_the_hourly_schedule_asks_for_a_tagged_snapshot() -> None:
    request = schedules.hourly_refresh(dg.build_schedule_context())
    assert isinstance(request, dg.RunRequest)
    assert request.tags == schedules.SCHEDULED


@pytest.mark.parametrize(
    ("tags", "shards"),
    [
        pytest.param(schedules.SCHEDULED, True, id="scheduled"),
        pytest.param({}, False, id="by-hand"),
    ],
)
def test_a_scheduled_snapshot_starts_one_run_per_shard_and_a_hand_run_none(
    tags: dict[str, str], shards: bool
) -> None:
    run = dg.DagsterRun(
        job_name="refresh_missing_ids", tags=tags, status=dg.DagsterRunStatus.SUCCESS
    )
    with dg.instance_for_test() as instance:
        context = dg.build_run_status_sensor_context(
            sensor_name="shards_after_refresh",
            dagster_instance=instance,
            dagster_run=run,
            dagster_event=dg.DagsterEvent(
                event_type_value="PIPELINE_SUCCESS", job_name="refresh_missing_ids"
            ),
        )
        result = schedules.shards_after_refresh(context)
    requests = [r for r in ([] if isinstance(result, dg.SkipReason) else result or [])]
    assert [r.partition_key for r in requests] == (
        shard_partitions.get_partition_keys() if shards else []
    )
    assert all(r.tags[schedules.SNAPSHOT_TAG] == run.run_id for r in requests)
    assert all(r.run_key == f"{run.run_id}:{r.partition_key}" for r in requests)


def test_the_shard_count_is_the_partitions_definitions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Assets and checks built for three shards are partitioned alike, and nothing reads
    PAYOUT_SHARDS once the definitions exist (a value set later changes nothing)."""
    monkeypatch.setenv("PAYOUT_SHARDS", "not read after load")
    snapshot, fetch, ingest = assets.shard_assets(shard_partitions_def(3))
    assert snapshot.partitions_def is None
    keys = ["shard-00", "shard-01", "shard-02"]
    assert fetch.partitions_def.get_partition_keys() == keys
    assert ingest.partitions_def.get_partition_keys() == keys
    for asset in (fetch, ingest):
        for spec in asset.check_specs:
            assert spec.partitions_def == fetch.partitions_def, spec.name
