"""A shard run's preparation and its failure record: the plain work around the fetch worker that
the ``goldsky_payouts`` asset starts through Dagster Pipes."""

from __future__ import annotations

from payout_assets.warehouse import tables
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets.warehouse.tables import Snapshot

WORKER_FAILED = "the fetch worker failed"


class ShardNotReady(RuntimeError):
    """The shard cannot run yet; the message names the fix."""


def prepare_shard(store: ClickHouseStore, shard: int, shards: int) -> Snapshot:
    """The snapshot the shard fetches against, after dropping debris of killed runs.

    Called while holding the shard's lock: no other run of this shard is alive, so staging
    partitions nobody published are debris of a killed run, and the snapshot read here is the
    newest one (a backfill started meanwhile is not missed)."""
    with store.session():
        tables.ensure_schema(store)
        snapshot = tables.current_snapshot(store)
        tables.drop_orphan_runs(store, shard)
    if snapshot is None:
        raise ShardNotReady("no backfill snapshot yet: materialise missing_condition_ids first")
    if snapshot.shard_count != shards:
        raise ShardNotReady(
            f"PAYOUT_SHARDS changed since the snapshot: it is {shards}, the snapshot was "
            f"split into {snapshot.shard_count} shards; set PAYOUT_SHARDS={snapshot.shard_count} "
            "to finish this backfill, or take a new snapshot with the current value "
            "(payout-backfill run --fresh, or materialise missing_condition_ids)"
        )
    return snapshot


def record_shard_failure(
    store: ClickHouseStore,
    shard: int,
    run_id: str,
    snapshot: Snapshot,
    error: str,
    failed_ids: list[str],
) -> None:
    """Drop the run's staged rows and record the shard and the failed batch's ids as failed in
    the ledger, so that every id of the shard keeps exactly one state."""
    with store.session():
        tables.drop_staged_run(store, shard, run_id)
        tables.fail_shard(store, shard, run_id, snapshot.generation, f"shard run failed: {error}")
        tables.record_states(
            store, snapshot.generation, run_id, [(c, "failed", error, shard) for c in failed_ids]
        )
