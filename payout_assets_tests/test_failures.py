"""``shard_failure_lines``: why a shard failed, read from the Dagster instance's records of its
run, as lines an operator can act on (the check, the figure, the limit, the rows, the setting)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from payout_assets.cli.failures import job_failure_lines, shard_failure_lines
from payout_assets.defs import assets
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets_tests.conftest import Pipeline, write_ids
from payout_standins.goldsky import Simulator

pytestmark = pytest.mark.integration


def _ids(sim: Simulator, n: int) -> list[str]:
    return [sim.universe.condition_id(i).removeprefix("0x") for i in range(n)]


def test_a_failed_blocking_check_names_its_figure_limit_setting_and_rows(
    pipeline: Pipeline, sim: Simulator, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("PAYOUT_MAX_REJECTED_SHARE", "0.01")
    ids = _ids(sim, 400)
    pipeline.ids_file = write_ids(tmp_path / "ids.txt", ids)
    bad = ids[:200]
    for cid in bad:
        sim.universe.set_override("0x" + cid, ["2", "2"], "3")
    pipeline.snapshot()
    result = pipeline.shard("shard-00")
    assert not result.success

    (line,) = shard_failure_lines(pipeline.instance, ["shard-00"])
    assert line.startswith("shard-00: blocking check goldsky_payouts/rejected_share failed")
    assert "limit 0.01" in line and "PAYOUT_MAX_REJECTED_SHARE" in line
    # The query on the line lists exactly this shard's rejected ids.
    query = re.search(r"the rows: (SELECT .*?ORDER BY condition_id)", line)
    assert query, line
    listed = {row[0] for row in pipeline.store.query_rows(query.group(1))}
    in_shard = {
        row[0]
        for row in pipeline.store.query_rows(
            "SELECT condition_id FROM payout_backfill.missing_condition_ids WHERE shard = 0"
        )
    }
    assert listed and listed == in_shard & set(bad)
    # The same run, found by its id.
    assert shard_failure_lines(pipeline.instance, [result.run_id]) == [line]


def test_a_changed_shard_count_says_so_and_how_to_finish(
    pipeline: Pipeline, sim: Simulator, tmp_path: Path
) -> None:
    pipeline.shards = 8
    pipeline.ids_file = write_ids(tmp_path / "ids.txt", _ids(sim, 100))
    pipeline.snapshot()
    pipeline.shards = 3  # as a code location loaded with PAYOUT_SHARDS=3 would run it
    assert not pipeline.shard("shard-00").success
    (line,) = shard_failure_lines(pipeline.instance, ["shard-00"])
    assert line.startswith("shard-00: step goldsky_payouts failed: PAYOUT_SHARDS changed"), line
    assert "set PAYOUT_SHARDS=8" in line and "--fresh" in line


def test_a_failed_snapshot_run_says_why(pipeline: Pipeline, tmp_path: Path) -> None:
    """The snapshot against a store without the source tables: the failed step's own error (the
    missing table and the DDL that creates it), from the run's records."""
    pipeline.store = ClickHouseStore(f"chdb://{tmp_path / 'bare'}")
    job = pipeline.materialize([assets.missing_condition_ids]).dagster_run.job_name
    (line,) = job_failure_lines(pipeline.instance, job)
    assert line.startswith(f"{job}: step missing_condition_ids failed: "), line
    assert "default.market_resolutions_final does not exist" in line
    assert "source_tables.sql" in line and "Traceback" not in line
