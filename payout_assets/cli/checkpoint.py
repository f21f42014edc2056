"""Partition status as the checkpoint: which shards are done for the current backfill.

A shard is done when its ``resolutions_external_ingest`` partition was materialised after the
latest ``missing_condition_ids``. Everything is read from the Dagster instance at DAGSTER_HOME,
the same place the UI reads, so the CLI and the UI never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

MISSING = dg.AssetKey("missing_condition_ids")
FETCH = dg.AssetKey("goldsky_payouts")
INGEST = dg.AssetKey("resolutions_external_ingest")
VIEW = dg.AssetKey("vw_resolutions_truth")


def latest_materialization(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None
) -> dg.EventLogRecord | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None),
        limit=1,
    ).records
    return records[0] if records else None


def snapshot_run_id(instance: dg.DagsterInstance) -> str | None:
    """The run of the latest ``missing_condition_ids`` materialisation: the generation the shards'
    checkpoints are relative to (the asset names its generation after its run)."""
    missing = latest_materialization(instance, MISSING)
    return missing.event_log_entry.run_id if missing else None


@dataclass(frozen=True)
class ShardCheckpoint:
    key: str
    fetched_at: float | None
    ingested_at: float | None
    done: bool


def shard_checkpoints(
    instance: dg.DagsterInstance, keys: list[str]
) -> tuple[float | None, list[ShardCheckpoint]]:
    missing = latest_materialization(instance, MISSING)
    since = missing.timestamp if missing else None
    out: list[ShardCheckpoint] = []
    for key in keys:
        fetched = latest_materialization(instance, FETCH, key)
        ingested = latest_materialization(instance, INGEST, key)
        done = since is not None and ingested is not None and ingested.timestamp > since
        out.append(
            ShardCheckpoint(
                key,
                fetched.timestamp if fetched else None,
                ingested.timestamp if ingested else None,
                done,
            )
        )
    return since, out
