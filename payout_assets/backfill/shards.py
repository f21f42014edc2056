"""A shard run's work, as the ``goldsky_payouts`` asset does it: prepare under the shard's lock,
fetch, validate, stage and publish, and on failure leave the shard with a recorded state."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from payout_assets.redact import redact
from payout_assets.sources.goldsky.client import GoldskyClient
from payout_assets.sources.goldsky.shard import (
    ShardFailed,
    ShardIds,
    ShardProgress,
    read_shard_ids,
    run_shard,
)
from payout_assets.warehouse import tables
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets.warehouse.tables import Snapshot

T = TypeVar("T")


class ShardNotReady(RuntimeError):
    """The shard cannot run yet; the message names the fix."""


@dataclass(frozen=True)
class PreparedShard:
    """What a shard run fetches: the snapshot it is pinned to and the shard's ids."""

    snapshot: Snapshot
    ids: ShardIds


def prepare_shard(store: ClickHouseStore, shard: int, shards: int, chunk: int) -> PreparedShard:
    """The snapshot the shard fetches against and its ids (read in ``chunk``s), after dropping
    debris of killed runs, in one engine session.

    Called while holding the shard's lock: no other run of this shard is alive, so staging
    partitions nobody published are debris of a killed run, and the snapshot read here is the
    newest one (a backfill started meanwhile is not missed)."""
    with store.session():
        tables.ensure_schema(store)
        found = tables.current_snapshot(store)
        tables.drop_orphan_runs(store, shard)
        snapshot = _ready(found, shards)
        return PreparedShard(snapshot, read_shard_ids(store, shard, snapshot.generation, chunk))


def _ready(snapshot: Snapshot | None, shards: int) -> Snapshot:
    """``snapshot`` if the shard can fetch against it; else why not, and the fix."""
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


@dataclass(frozen=True)
class ShardFetched:
    """A published shard run: its progress and the client's request counts."""

    progress: ShardProgress
    requests: int
    retries: int


def fetch_and_publish(
    store: ClickHouseStore,
    client: GoldskyClient,
    shard: int,
    run_id: str,
    prepared: PreparedShard,
    log: logging.Logger,
    then: Callable[[], T],
) -> tuple[ShardFetched, T]:
    """Fetch, validate and stage every id of the shard, then publish the run and call ``then``
    (the checks' reads) in the session of the last write. When anything fails (a batch past its
    retries, the store, a terminated run) the run's staged rows are dropped and the shard and
    the failed batch's ids are recorded as failed before the error goes on, as
    :class:`ShardFailed` with a message that holds no secret of the client's."""
    snapshot = prepared.snapshot
    after: list[T] = []

    def publish() -> None:
        tables.publish_shard(store, shard, run_id, snapshot.generation)
        after.append(then())

    try:
        progress = run_shard(
            store,
            client,
            shard,
            run_id,
            snapshot,
            prepared.ids,
            publish=publish,
            on_progress=lambda p: log.info(p.summary()),
            log=log,
        )
    except BaseException as exc:
        ids = list(exc.condition_ids) if isinstance(exc, ShardFailed) else []
        error = redact(str(exc), client.settings.secret_values()) or type(exc).__name__
        record_shard_failure(store, shard, run_id, snapshot, error, ids)
        if isinstance(exc, Exception):
            raise ShardFailed(error, ids) from None
        raise
    return ShardFetched(progress, client.requests_sent, client.retries), after[0]


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
