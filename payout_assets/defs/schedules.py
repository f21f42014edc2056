"""New resolutions arrive on their own: an hourly refresh, then every shard, then the view.

The schedule takes a new snapshot (``refresh_missing_ids``); when that run succeeds a sensor asks
for one ``backfill_shard`` run per shard; when the last shard of that snapshot is ingested a
second sensor refreshes the truth view. Only runs started by this chain (tagged
``payout-backfill/trigger=schedule``) move it on, so a backfill someone started by hand is
never doubled. All three start RUNNING, stated here rather than by a click in the UI.
"""

import dagster as dg

from payout_assets.defs.jobs import backfill_shard, publish_truth_view, refresh_missing_ids
from payout_assets.defs.partitions import shard_partitions
from payout_assets.settings import refresh_cron

TRIGGER_TAG = "payout-backfill/trigger"
SNAPSHOT_TAG = "payout-backfill/snapshot-run"
SCHEDULED = {TRIGGER_TAG: "schedule"}
MISSING_KEY = dg.AssetKey("missing_condition_ids")
INGEST_KEY = dg.AssetKey("resolutions_external_ingest")


@dg.schedule(
    job=refresh_missing_ids,
    cron_schedule=refresh_cron(),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    tags=SCHEDULED,
    description="Hourly (PAYOUT_REFRESH_CRON): a new snapshot of the ids still missing a payout.",
)
def hourly_refresh() -> dg.RunRequest:
    return dg.RunRequest(tags=SCHEDULED)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[refresh_missing_ids],
    request_job=backfill_shard,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a scheduled snapshot, one run per shard (each retried alone if it fails).",
)
def shards_after_refresh(context: dg.RunStatusSensorContext):
    run = context.dagster_run
    if run.tags.get(TRIGGER_TAG) != "schedule":
        return dg.SkipReason("snapshot was not taken by the schedule")
    for key in shard_partitions.get_partition_keys():
        yield dg.RunRequest(
            run_key=f"{run.run_id}:{key}",
            partition_key=key,
            tags={**SCHEDULED, SNAPSHOT_TAG: run.run_id},
        )


def _all_shards_ingested_since(instance: dg.DagsterInstance, since: float) -> bool:
    for key in shard_partitions.get_partition_keys():
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=INGEST_KEY, asset_partitions=[key]), limit=1
        ).records
        if not records or records[0].timestamp <= since:
            return False
    return True


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[backfill_shard],
    request_job=publish_truth_view,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="When every shard of a scheduled snapshot is ingested, refresh the truth view.",
)
def view_after_shards(context: dg.RunStatusSensorContext):
    snapshot_run = context.dagster_run.tags.get(SNAPSHOT_TAG)
    if context.dagster_run.tags.get(TRIGGER_TAG) != "schedule" or not snapshot_run:
        return dg.SkipReason("shard run was not started by the schedule")
    latest = context.instance.fetch_materializations(MISSING_KEY, limit=1).records
    if not latest or latest[0].run_id != snapshot_run:
        return dg.SkipReason("a newer snapshot exists; its own shards will refresh the view")
    if not _all_shards_ingested_since(context.instance, latest[0].timestamp):
        return dg.SkipReason("shards of this snapshot are still running")
    return dg.RunRequest(run_key=f"view:{snapshot_run}", tags=SCHEDULED)
