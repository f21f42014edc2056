"""`payout-backfill run` recorded as one Dagster backfill: what the UI shows while it runs, and
that Dagster's backfill daemon (``dagster dev`` on the same instance) never launches its runs a
second time. The end-to-end check, after a real CLI run, is in test_cli.py."""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.utils import make_new_run_id
from dagster._daemon.backfill import execute_backfill_iteration

from payout_assets.cli.backfill_record import BackfillRecord
from payout_assets.defs.partitions import shard_key
from payout_assets_tests.backfills_ui import backfills, statuses_by_asset, ui_graphql
from payout_assets_tests.cli_helpers import project_env

pytestmark = pytest.mark.e2e

SHARDS = 4


def test_the_daemon_launches_nothing_of_a_cli_backfill_in_flight(tmp_path: Path) -> None:
    keys = [shard_key(i) for i in range(SHARDS)]
    env = project_env(tmp_path / "home", "http://127.0.0.1:9/unused", PAYOUT_SHARDS=str(SHARDS))
    with ui_graphql(env) as (query, instance, workspace):
        record = BackfillRecord(instance)
        record.expect(snapshot=True, shards=keys)
        # The CLI's snapshot run, in flight (its fork creates it with the backfill's tags).
        run_id = make_new_run_id()
        instance.add_run(
            dg.DagsterRun(
                job_name="refresh_missing_ids",
                run_id=run_id,
                status=dg.DagsterRunStatus.STARTED,
                tags=record.tags(),
            )
        )
        record.tick({})
        assert record.stored

        # One tick of the daemon's backfill loop, as `dagster dev` runs it every 30 s.
        errors = [e for e in execute_backfill_iteration(workspace, logging.getLogger()) if e]
        assert errors == []
        assert [r.run_id for r in instance.get_runs()] == [run_id]  # nothing launched
        backfill = instance.get_backfill(record.backfill_id)
        assert backfill is not None and backfill.status == BulkActionStatus.REQUESTED

        [shown] = backfills(query)
        assert shown["id"] == record.backfill_id
        assert shown["status"] == "REQUESTED"  # the page's "In progress"
        assert shown["isAssetBackfill"] and shown["title"] == "payout-backfill run"
        assert shown["numPartitions"] == SHARDS and sorted(shown["partitionNames"]) == keys
        assert [r["runId"] for r in shown["unfinishedRuns"]] == [run_id]
        per_asset = statuses_by_asset(shown)
        for asset in ("goldsky_payouts", "resolutions_external_ingest"):
            assert per_asset[asset]["numPartitionsTargeted"] == SHARDS
            assert per_asset[asset]["numPartitionsInProgress"] == SHARDS
        assert per_asset["missing_condition_ids"]["inProgress"]
        assert per_asset["vw_resolutions_truth"]["inProgress"]

        # The CLI is interrupted: the record says so, and the daemon still launches nothing.
        instance.report_run_canceled(instance.get_run_by_id(run_id))
        assert record.finish(interrupted=True) == BulkActionStatus.CANCELED
        errors = [e for e in execute_backfill_iteration(workspace, logging.getLogger()) if e]
        assert errors == [] and len(instance.get_runs()) == 1
        [shown] = backfills(query)
        assert shown["status"] == "CANCELED" and shown["endTimestamp"]
        assert statuses_by_asset(shown)["goldsky_payouts"]["numPartitionsFailed"] == SHARDS
