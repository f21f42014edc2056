"""A backfill whose shard runs execute on two "hosts": two process trees with their own
DAGSTER_HOME and temp dir, sharing only the instance's PostgreSQL, Redis, the ClickHouse store
and the endpoint, against a subgraph that answers 429 above GOLDSKY_MAX_RPS."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from payout_assets.defs.partitions import shard_key
from payout_assets.settings import INSTANCE_FOR_SEVERAL_HOSTS
from payout_assets.warehouse import tables
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets_tests.cli_helpers import materialize, project_env, run, start
from payout_standins.demo import seed_store
from payout_standins.goldsky import Simulator, SimulatorConfig, run_simulator
from payout_standins.procs import stop_group

pytestmark = pytest.mark.e2e

SHARDS = 4
MAX_RPS = 2
SHARD_ASSETS = "goldsky_payouts,resolutions_external_ingest"


def _host(tmp_path: Path, name: str, sim: Simulator, shared: dict[str, str]) -> dict[str, str]:
    """One host's environment: its own DAGSTER_HOME (with the several-hosts instance) and temp
    dir; the store, the instance's database, Redis and the endpoint are ``shared``."""
    home = tmp_path / name / "home"
    env = project_env(home, sim.url, PAYOUT_SHARDS=str(SHARDS), GOLDSKY_MAX_RPS=str(MAX_RPS))
    shutil.copyfile(INSTANCE_FOR_SEVERAL_HOSTS, home / "dagster.yaml")
    temp = tmp_path / name / "tmp"
    temp.mkdir()
    return {**env, "TMPDIR": str(temp), **shared}


def _expected(sim: Simulator, store: ClickHouseStore) -> dict[str, tuple[list[int], int]]:
    snapshot = tables.current_snapshot(store)
    assert snapshot is not None
    out = {}
    for (cid,) in store.query_rows(
        "SELECT condition_id FROM payout_backfill.missing_condition_ids"
    ):
        state = sim.universe.state("0x" + cid, snapshot.block_number)
        if state is not None and state.resolved:
            out[cid] = ([int(n) for n in state.numerators or ()], int(state.denominator or 0))
    return out


def test_shard_runs_on_two_hosts_share_the_rate_and_never_overlap_on_a_shard(
    tmp_path: Path, pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = SimulatorConfig(size=20_000, seed=5, latency_ms=50, rate_limit=(MAX_RPS, 1.0))
    with run_simulator(config) as sim:
        dsn = f"chdb://{tmp_path / 'shared' / 'clickhouse'}"
        shared = {"CLICKHOUSE_DSN": dsn, "DAGSTER_PG_URL": pg_url, "PAYOUT_REDIS_URL": redis_url}
        host_a, host_b = (_host(tmp_path, name, sim, shared) for name in ("a", "b"))
        store = ClickHouseStore(dsn)
        seed_store(store, sim.universe, 6_000)
        logs = tmp_path / "logs"
        logs.mkdir()

        snapshot_log = logs / "snapshot.log"
        assert run(materialize("missing_condition_ids"), host_a, snapshot_log) == 0, (
            snapshot_log.read_text()[-3000:]
        )
        # shard-00 and shard-01 on host a; shard-02, shard-03 and shard-01 again on host b
        launches = [(host_a, 0), (host_a, 1), (host_b, 2), (host_b, 3), (host_b, 1)]
        procs: list[tuple[subprocess.Popen[bytes], Path]] = []
        try:
            for n, (env, shard) in enumerate(launches):
                log = logs / f"run-{n}-shard-{shard}.log"
                procs.append((start(materialize(SHARD_ASSETS, shard_key(shard)), env, log), log))
            for proc, log in procs:
                assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
        finally:
            for proc, _ in procs:
                stop_group(proc)
        view_log = logs / "view.log"
        assert run(materialize("vw_resolutions_truth"), host_b, view_log) == 0, (
            view_log.read_text()[-3000:]
        )

        stats = sim.traffic.stats()
        assert stats["rate_limited"] == 0, stats
        assert stats["max_requests_per_second"] <= MAX_RPS, stats
        # one of shard-01's two runs waited for the other's lock; they never wrote together
        waited = [
            log
            for (proc, log), (_, shard) in zip(procs, launches, strict=True)
            if shard == 1 and "another run of shard-01 is in progress" in log.read_text()
        ]
        assert len(waited) == 1, [log.read_text()[-2000:] for _, log in procs]

    ingested = {
        cid: (list(n), d)
        for cid, n, d in store.query_rows(
            "SELECT condition_id, payout_numerators, payout_denominator "
            "FROM default.resolutions_external_ingest FINAL"
        )
    }
    assert ingested == _expected(sim, store)
    staged = store.query_rows(
        "SELECT uniqExact(run_id), count() = uniqExact(condition_id) "
        "FROM payout_backfill.goldsky_payouts WHERE shard = 1"
    )[0]
    assert staged == (1, 1)  # the later run of shard-01 replaced the earlier one's rows
    # the shards' locks were PostgreSQL's: no lock file beside the store
    assert not list((tmp_path / "shared").glob("clickhouse.shard-*.lock"))
    snapshot = tables.current_snapshot(store)
    states = tables.state_counts(store, snapshot.generation)
    assert "pending" not in states and sum(states.values()) == snapshot.distinct_ids

    # one instance: either host's DAGSTER_HOME reads every run and every checkpoint
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
    instance = dg.DagsterInstance.from_config(host_b["DAGSTER_HOME"])
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        runs = instance.get_run_records()
        assert len(runs) == 1 + len(launches) + 1
        assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        every = {shard_key(i) for i in range(SHARDS)}
        for key in ("goldsky_payouts", "resolutions_external_ingest"):
            assert instance.get_materialized_partitions(dg.AssetKey(key)) == every
    finally:
        instance.dispose()
