"""One ``payout-backfill run`` as one Dagster asset backfill, so the UI's Backfills page shows it.

The CLI launches its runs itself (forks of the forkserver, ``payout_assets.cli.launcher``). For
the UI to group them, every run carries the ``dagster/backfill`` tag of one ``PartitionBackfill``
recorded in the instance. Dagster's backfill daemon (``dagster dev`` may be running on the same
instance) launches runs for a backfill only while it is ``REQUESTED`` and only for the target
partitions not yet in its ``requested_subset``, so the record is written with
``requested_subset == target_subset`` (and ``requested_runs_for_target_roots``): the daemon then
has nothing to launch and only follows the runs' materialisations, as it does for its own.

The record is stored once one of its runs exists and is unfinished: a ``REQUESTED`` backfill
with no run in flight would be judged stalled by the daemon and closed as failed. (A daemon tick
landing in the milliseconds between one run's end and the next run's start could still do so;
the CLI's next write, when a run ends, and its final one put the record right.) While shards
run the CLI refreshes what is materialised or failed as each run ends (so the page shows
progress without a daemon), and at the end writes the final status itself:
``COMPLETED_SUCCESS`` when every targeted partition was materialised, ``COMPLETED_FAILED``
otherwise, ``CANCELED`` when the CLI was interrupted.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Mapping

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.definitions.timestamp import TimestampWithTimezone
from dagster._core.execution.asset_backfill import AssetBackfillData
from dagster._core.execution.backfill import (
    BulkActionsFilter,
    BulkActionStatus,
    PartitionBackfill,
)
from dagster._core.storage.dagster_run import NOT_FINISHED_STATUSES
from dagster._core.storage.tags import BACKFILL_ID_TAG, PARTITION_NAME_TAG
from dagster._core.utils import make_new_backfill_id

from payout_assets.cli.checkpoint import FETCH, INGEST, MISSING, VIEW
from payout_assets.defs.partitions import shard_partitions

LAUNCHED_BY_TAG = "payout-backfill/launched-by"
PID_TAG = "payout-backfill/cli-pid"
HOST_TAG = "payout-backfill/cli-host"
TITLE = "payout-backfill run"
SHARD_ASSETS = (FETCH, INGEST)
STORE_POLL_S = 0.5
PAGE = 1_000  # materialisation records read per query


def _subset(partitions: Iterable[AssetKeyPartitionKey]) -> AssetGraphSubset:
    """Group (asset, partition) pairs into the subset Dagster stores: shard partitions of the two
    shard assets, the snapshot and the view as unpartitioned keys."""
    by_key: dict[dg.AssetKey, set[str]] = {}
    plain: set[dg.AssetKey] = set()
    for item in partitions:
        if item.partition_key is None:
            plain.add(item.asset_key)
        else:
            by_key.setdefault(item.asset_key, set()).add(item.partition_key)
    return AssetGraphSubset(
        partitions_subsets_by_asset_key={
            key: shard_partitions.subset_with_partition_keys(sorted(keys))
            for key, keys in by_key.items()
        },
        non_partitioned_asset_keys=plain,
    )


class BackfillRecord:
    """The backfill record of one ``payout-backfill run`` (see the module docstring)."""

    def __init__(self, instance: dg.DagsterInstance | None = None) -> None:
        self.backfill_id = make_new_backfill_id()
        self.started = time.time()
        self.instance = instance
        self.target: set[AssetKeyPartitionKey] = set()
        self.stored = False
        self.record_tags = {
            LAUNCHED_BY_TAG: "cli",
            PID_TAG: str(os.getpid()),
            HOST_TAG: socket.gethostname(),
        }
        self._next_poll = 0.0
        self.error: str | None = None
        self._ended: set[str] = set()

    def attach(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        try:
            close_abandoned(instance)
        except Exception as exc:  # earlier records stay as they were; this run goes on
            self.error = f"{type(exc).__name__}: {exc}"

    def tags(self, partition: str | None = None) -> dict[str, str]:
        """The tags of one of its runs: the backfill id (the UI's grouping) and the partition."""
        tags = {BACKFILL_ID_TAG: self.backfill_id, LAUNCHED_BY_TAG: "cli"}
        if partition is not None:
            tags[PARTITION_NAME_TAG] = partition
        return tags

    def expect(self, snapshot: bool, shards: Iterable[str], view: bool = True) -> None:
        """What this invocation will materialise: the snapshot (unless resuming), both shard assets
        for each shard to run, then the view."""
        target = {AssetKeyPartitionKey(k, s) for s in shards for k in SHARD_ASSETS}
        if snapshot:
            target.add(AssetKeyPartitionKey(MISSING))
        if view:
            target.add(AssetKeyPartitionKey(VIEW))
        self.target = target

    # -- reading what the runs did ------------------------------------------------------------

    def _run_ids(self) -> list[str]:
        assert self.instance is not None
        return list(self.instance.get_run_ids(filters=dg.RunsFilter.for_backfill(self.backfill_id)))

    def materialized(self) -> set[AssetKeyPartitionKey]:
        """Targeted partitions materialised by this backfill's runs, read from the instance's
        asset index (a query per targeted asset, for what was materialised since the backfill
        started) rather than from each run's own event log."""
        assert self.instance is not None
        runs = set(self._run_ids())
        done: set[AssetKeyPartitionKey] = set()
        for key in {p.asset_key for p in self.target}:
            since = dg.AssetRecordsFilter(asset_key=key, after_timestamp=self.started)
            cursor = None
            while True:
                page = self.instance.fetch_materializations(since, limit=PAGE, cursor=cursor)
                for record in page.records:
                    if record.run_id in runs:
                        done.add(AssetKeyPartitionKey(key, record.partition_key))
                if not page.has_more:
                    break
                cursor = page.cursor
        return done & self.target

    def _backfill(
        self,
        status: BulkActionStatus,
        failed_shards: Iterable[str] = (),
        all_unmaterialized_failed: bool = False,
    ) -> PartitionBackfill:
        assert self.instance is not None
        latest = self.instance.event_log_storage.get_maximum_record_id() or 0
        done = self.materialized()
        if all_unmaterialized_failed:
            failed = self.target - done
        else:
            failed = {AssetKeyPartitionKey(k, s) for s in failed_shards for k in SHARD_ASSETS}
            failed = (failed & self.target) - done
        target = _subset(self.target)
        data = AssetBackfillData(
            target_subset=target,
            requested_runs_for_target_roots=True,
            # The daemon (if one runs) adds materialisations after this id to those read here.
            latest_storage_id=latest,
            materialized_subset=_subset(done),
            requested_subset=target,
            failed_and_downstream_subset=_subset(failed),
            backfill_start_time=TimestampWithTimezone(self.started, "UTC"),
        )
        terminal = status != BulkActionStatus.REQUESTED
        return PartitionBackfill(
            backfill_id=self.backfill_id,
            status=status,
            from_failure=False,
            tags=self.record_tags,
            backfill_timestamp=self.started,
            asset_selection=sorted({p.asset_key for p in self.target}, key=lambda k: k.path),
            title=TITLE,
            asset_backfill_data=data,
            backfill_end_timestamp=time.time() if terminal else None,
        )

    # -- writing -----------------------------------------------------------------------------

    def add(self) -> None:
        """Store the record as in progress (``REQUESTED``, everything already requested)."""
        assert self.instance is not None and self.target
        self.instance.add_backfill(self._backfill(BulkActionStatus.REQUESTED))
        self.stored = True

    def tick(self, codes: Mapping[str, int]) -> None:
        """Called from the CLI's wait loop: store the record once a run of it is in flight; when
        a run has ended since the last call, refresh what is materialised and failed. An error
        here (the instance's storage busy) must not stop the loop that waits for the shards: it
        is kept in ``error`` and ticking stops; ``finish`` still writes the final record."""
        if self.instance is None or not self.target or self.error is not None:
            return
        try:
            self._tick(codes)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def _tick(self, codes: Mapping[str, int]) -> None:
        assert self.instance is not None
        if not self.stored:
            now = time.monotonic()
            if now < self._next_poll:
                return
            self._next_poll = now + STORE_POLL_S
            in_flight = self.instance.get_run_ids(
                filters=dg.RunsFilter(
                    tags={BACKFILL_ID_TAG: self.backfill_id}, statuses=list(NOT_FINISHED_STATUSES)
                ),
                limit=1,
            )
            if in_flight:
                self.add()
                self._ended = set(codes)
            return
        if set(codes) - self._ended:
            self._ended |= set(codes)
            failed = [shard for shard, code in codes.items() if code != 0]
            self.instance.update_backfill(self._backfill(BulkActionStatus.REQUESTED, failed))

    def _rebuild(self, backfill: PartitionBackfill) -> None:
        """Take over a stored record (its id, start, target) to close it."""
        assert backfill.asset_backfill_data is not None
        self.backfill_id = backfill.backfill_id
        self.started = backfill.backfill_timestamp
        self.record_tags = dict(backfill.tags)
        self.target = set(backfill.asset_backfill_data.target_subset.iterate_asset_partitions())
        self.stored = True

    def finish(self, interrupted: bool = False) -> BulkActionStatus | None:
        """Write the final status: every targeted partition not materialised counts as failed."""
        if self.instance is None or not self.target:
            return None
        backfill = self._backfill(BulkActionStatus.REQUESTED, all_unmaterialized_failed=True)
        data = backfill.asset_backfill_data
        assert data is not None
        if interrupted:
            status = BulkActionStatus.CANCELED
        elif data.failed_and_downstream_subset.is_empty:
            status = BulkActionStatus.COMPLETED_SUCCESS
        else:
            status = BulkActionStatus.COMPLETED_FAILED
        final = backfill.with_status(status).with_end_timestamp(time.time())
        if self.stored:
            self.instance.update_backfill(final)
        else:
            self.instance.add_backfill(final)
            self.stored = True
        return status


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def close_abandoned(instance: dg.DagsterInstance) -> list[str]:
    """Close, as ``CANCELED``, the in-progress records of earlier ``payout-backfill run``s on
    this host whose process is gone (killed before it could write the final status), so the UI
    does not show them in progress forever. A record of a CLI still running is left alone."""
    closed: list[str] = []
    requested = instance.get_backfills(
        filters=BulkActionsFilter(statuses=[BulkActionStatus.REQUESTED])
    )
    for backfill in requested:
        tags = backfill.tags or {}
        pid = tags.get(PID_TAG, "")
        if (
            tags.get(LAUNCHED_BY_TAG) != "cli"
            or tags.get(HOST_TAG) != socket.gethostname()
            or not pid.isdigit()
            or _alive(int(pid))
            or backfill.asset_backfill_data is None
        ):
            continue
        record = BackfillRecord(instance)
        record._rebuild(backfill)
        record.finish(interrupted=True)
        closed.append(backfill.backfill_id)
    return closed
