"""`payout-backfill run` and `verify` never report success the ledger does not show: a snapshot
the store pinned but Dagster never checkpointed is not resumed, ids left open make `verify`
fail, and a `--parallel` that would run no shard is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import dagster as dg
import pytest

from payout_assets.cli.report import open_ids, open_ids_line
from payout_assets.warehouse import tables
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets_tests.cli_helpers import cli, project_env, run
from payout_assets_tests.conftest import Pipeline
from payout_standins.demo import seed_store
from payout_standins.goldsky import SimulatorConfig, run_simulator

pytestmark = pytest.mark.e2e


def _pin_behind_dagsters_back(store: ClickHouseStore, endpoint: str) -> str:
    """A snapshot pinned in the store whose materialisation no instance the CLI reads records:
    what a snapshot run killed right after pinning its block, or a refresh that failed after
    swapping in its ids, leaves behind. Full mode, so unresolved ids are pending again."""
    with pytest.MonkeyPatch.context() as patch, dg.instance_for_test() as elsewhere:
        patch.setenv("PAYOUT_INCREMENTAL", "0")
        Pipeline(store=store, endpoint=endpoint, instance=elsewhere, shards=2).snapshot()
    snapshot = tables.current_snapshot(store)
    assert snapshot is not None
    return snapshot.generation


def _open(store: ClickHouseStore) -> dict[str, int]:
    snapshot = tables.current_snapshot(store)
    assert snapshot is not None
    return open_ids(tables.state_counts(store, snapshot.generation))


def test_a_snapshot_dagster_never_checkpointed_is_fetched_not_resumed(tmp_path: Path) -> None:
    # Two shards, in process and in the CLI alike: the CLI's fixed cost grows with its shards.
    with run_simulator(SimulatorConfig(size=4_000, seed=5)) as sim:
        home = tmp_path / "home"
        env = project_env(home, sim.url, PAYOUT_SHARDS="2")
        store = ClickHouseStore(env["CLICKHOUSE_DSN"])
        seed_store(store, sim.universe, 1_500)
        # A backfill the CLI's instance knows: its snapshot, and one shard done for it.
        instance = dg.DagsterInstance.from_config(str(home))
        try:
            known = Pipeline(store=store, endpoint=sim.url, instance=instance, shards=2)
            known.snapshot()
            assert known.shard("shard-00").success
        finally:
            instance.dispose()
        orphan = _pin_behind_dagsters_back(store, sim.url)
        assert _open(store), "the orphan snapshot must hold ids to fetch"

        log = tmp_path / "run.log"
        code = run(cli("run"), env, log, timeout=300)
        output = log.read_text()
        assert code == 0, output[-3000:]
        assert "taking a new snapshot" in output, output[-3000:]
        # Every id of the snapshot the run ends on was fetched: none pending, fetched or failed.
        assert tables.current_snapshot(store).generation != orphan
        assert _open(store) == {}, output[-3000:]

        # A snapshot pinned after the backfill leaves ids open: verify fails and says so.
        _pin_behind_dagsters_back(store, sim.url)
        verify_log = tmp_path / "verify.log"
        assert run(cli("verify"), env, verify_log, timeout=120) == 1
        verify = verify_log.read_text()
        assert "FAIL  ledger_accounts_for_every_id" in verify, verify
        assert "still open" in verify and "payout-backfill run" in verify, verify


def test_open_ids_name_their_count_states_and_fix() -> None:
    counts = {"ingested": 10, "pending": 1_200, "failed": 3, "unresolved": 4}
    still_open = open_ids(counts)
    assert still_open == {"pending": 1_200, "failed": 3}
    line = open_ids_line(still_open)
    assert line.startswith("1,203 ids of the current snapshot are still open")
    assert "1,200 pending" in line and "3 failed" in line
    assert "payout-backfill run" in line
    assert open_ids({"ingested": 5, "unresolved": 1}) == {}


@pytest.mark.parametrize("value", ["-1", "0", "two"])
def test_a_parallelism_that_runs_no_shard_is_refused(value: str, tmp_path: Path) -> None:
    env = project_env(tmp_path / "home", "http://127.0.0.1:9/")
    proc = subprocess.run(
        cli("run", "--parallel", value), env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert "argument --parallel" in line and value in line, proc.stderr
    assert "Traceback" not in proc.stderr


def test_verify_on_a_store_without_a_backfill_says_so_in_one_line(tmp_path: Path) -> None:
    env = project_env(tmp_path / "home", "http://127.0.0.1:9/")
    env["CLICKHOUSE_DSN"] = f"chdb://{tmp_path / 'empty-store'}"
    proc = subprocess.run(cli("verify"), env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("FAIL")]
    assert "no backfill" in line and "payout-backfill run" in line, proc.stdout
    assert "DB::Exception" not in proc.stdout + proc.stderr
