"""Runs executed by dagster-celery workers: two long-lived worker process trees stand in for two
hosts (each its own DAGSTER_HOME and temp dir), taking the runs a third "host" submits through
the instance's CeleryRunLauncher, with Debian's redis-server as the broker and PostgreSQL as the
instance (deploy/celery/)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.launcher import WorkerStatus
from redis import Redis

from payout_assets.defs.partitions import shard_key
from payout_assets.settings import PROJECT_ROOT
from payout_assets.sources.rate import rate_limit_key
from payout_assets.warehouse import tables
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets_tests.cli_helpers import BIN, dagster, run, start
from payout_assets_tests.deploy.hosts import host_env
from payout_assets_tests.payouts import ingested, snapshot_payouts
from payout_standins.demo import seed_store
from payout_standins.goldsky import FaultKind, SimulatorConfig, run_simulator
from payout_standins.procs import stop_group

pytestmark = pytest.mark.e2e

SHARDS = 4
MAX_RPS = 4
CELERY = PROJECT_ROOT / "deploy" / "celery"
MODULE = ["-m", "payout_assets.definitions"]


def _worker(env: dict[str, str], name: str, log: Path) -> subprocess.Popen[bytes]:
    args = [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app"]
    args += ["-y", str(CELERY / "worker.yaml"), "-q", "dagster", "-n", name, "--", "-c", "2"]
    # the worker command starts `celery` from PATH, as an installed environment has it
    return start(args, {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}, log)


def _wait_for_runs(
    instance: dg.DagsterInstance,
    count: int,
    timeout_s: float,
    workers: list[subprocess.Popen[bytes]],
) -> list[dg.DagsterRun]:
    """The instance's runs once ``count`` of them have finished (bounded; the workers must stay
    up meanwhile). Every run in progress must look alive to Dagster's run monitoring, which
    starts a run again when its worker's health is anything else (dagster-celery's tasks
    report STARTED for that)."""
    done = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
    alive = {WorkerStatus.RUNNING, WorkerStatus.SUCCESS}
    deadline = time.monotonic() + timeout_s
    while True:
        runs = instance.get_runs()
        for started in (r for r in runs if r.status == dg.DagsterRunStatus.STARTED):
            health = instance.run_launcher.check_run_worker_health(started)
            assert health.status in alive, (started.run_id, health)
        if sum(r.status in done for r in runs) >= count or time.monotonic() > deadline:
            return runs
        assert all(w.poll() is None for w in workers), "a Celery worker exited"
        time.sleep(0.5)


def _partition(shard: int) -> str:
    return json.dumps({"dagster/partition": shard_key(shard)})


def _logged(instance: dg.DagsterInstance, run: dg.DagsterRun, text: str) -> bool:
    return any(text in (e.user_message or "") for e in instance.all_logs(run.run_id))


def test_runs_execute_on_two_celery_workers_sharing_only_the_services(
    tmp_path: Path, pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = SimulatorConfig(size=20_000, seed=9, latency_ms=50, rate_limit=(MAX_RPS, 1.0))
    base = redis_url.rsplit("/", 1)[0]
    shared = {
        "CLICKHOUSE_DSN": f"chdb://{tmp_path / 'shared' / 'clickhouse'}",
        "DAGSTER_PG_URL": pg_url,
        "PAYOUT_REDIS_URL": f"{base}/0",
        "DAGSTER_CELERY_BROKER_URL": f"{base}/1",
        "DAGSTER_CELERY_BACKEND_URL": f"{base}/2",
        "PAYOUT_SHARDS": str(SHARDS),
        "GOLDSKY_MAX_RPS": str(MAX_RPS),
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    with run_simulator(config) as sim:
        launcher, *workers = (
            host_env(tmp_path, name, sim.url, CELERY / "dagster.yaml", **shared)
            for name in ("launcher", "w1", "w2")
        )
        store = ClickHouseStore(shared["CLICKHOUSE_DSN"])
        seed_store(store, sim.universe, 8_000)
        for name in ("DAGSTER_PG_URL", "DAGSTER_CELERY_BROKER_URL", "DAGSTER_CELERY_BACKEND_URL"):
            monkeypatch.setenv(name, shared[name])  # this process reads the instance too
        # the instance's tables exist before three hosts reach for them at once
        dg.DagsterInstance.from_config(launcher["DAGSTER_HOME"]).dispose()
        procs = [_worker(env, f"w{i}@%h", logs / f"w{i}.log") for i, env in enumerate(workers, 1)]
        instance = dg.DagsterInstance.from_config(launcher["DAGSTER_HOME"])
        try:
            log = logs / "launch.log"
            launch = ["job", "launch", *MODULE]
            assert run(dagster(*launch, "-j", "refresh_missing_ids"), launcher, log) == 0
            (snapshot,) = _wait_for_runs(instance, 1, 120, procs)
            assert snapshot.status == dg.DagsterRunStatus.SUCCESS, log.read_text()[-3000:]

            # shard-01 launched twice at once (two hosts asking for it), then every other shard;
            # shard-01's first answer is slow, so whichever run fetches first holds its lock
            # while the other run reaches for it
            shard_01 = {
                "0x" + c
                for (c,) in store.query_rows(
                    "SELECT condition_id FROM payout_backfill.missing_condition_ids WHERE shard = 1"
                )
            }
            sim.faults.add(
                FaultKind.SLOW, count=1, delay_s=5.0, match=lambda info: shard_01 & set(info.ids)
            )
            one = dagster(*launch, "-j", "backfill_shard", "--tags", _partition(1))
            both = [start(one, launcher, logs / f"launch-{n}.log") for n in (1, 2)]
            assert [p.wait(timeout=120) for p in both] == [0, 0]
            keys = ",".join(shard_key(i) for i in range(SHARDS) if i != 1)
            backfill = ["job", "backfill", *MODULE, "-j", "backfill_shard", "--noprompt"]
            assert run(dagster(*backfill, "--partitions", keys), launcher, log) == 0
            _wait_for_runs(instance, 2 + SHARDS, 240, procs)
            assert run(dagster(*launch, "-j", "publish_truth_view"), launcher, log) == 0
            runs = _wait_for_runs(instance, 3 + SHARDS, 120, procs)
            assert len(runs) == 3 + SHARDS
            assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), (
                [(r.job_name, r.tags.get("dagster/partition"), r.status) for r in runs],
                [p.read_text()[-2000:] for p in logs.glob("w*.log")],
            )
            # one of shard-01's two runs waited for the other's lock
            twice = [r for r in runs if r.tags.get("dagster/partition") == shard_key(1)]
            waited = [r for r in twice if _logged(instance, r, "another run of shard-01")]
            assert len(twice) == 2 and len(waited) == 1, waited
            for key in ("goldsky_payouts", "resolutions_external_ingest"):
                assert instance.get_materialized_partitions(dg.AssetKey(key)) == {
                    shard_key(i) for i in range(SHARDS)
                }
        finally:
            instance.dispose()
            for proc in procs:
                stop_group(proc)

        # both workers took runs: each logged the tasks it finished
        done = re.compile(r"Task execute_job\[[0-9a-f-]+\] succeeded")
        taken = [len(done.findall(p.read_text())) for p in sorted(logs.glob("w*.log"))]
        assert all(n >= 1 for n in taken) and sum(taken) == 3 + SHARDS, taken
        stats = sim.traffic.stats()
        assert stats["rate_limited"] == 0 and stats["max_requests_per_second"] <= MAX_RPS, stats
        # the rate was Redis's, one window for every host; no host kept one in its temp dir
        window = Redis.from_url(shared["PAYOUT_REDIS_URL"]).keys(f"{rate_limit_key(sim.url)}:*")
        assert len(window) == 1, window
        assert not list(tmp_path.glob("*/tmp/payout-backfill-rate-*"))

    assert ingested(store) == snapshot_payouts(sim, store)
    staged = store.query_rows(
        "SELECT uniqExact(run_id), count() = uniqExact(condition_id) "
        "FROM payout_backfill.goldsky_payouts WHERE shard = 1"
    )[0]
    assert staged == (1, 1)  # the later run of shard-01 replaced the earlier one's rows
    # the shards' locks were PostgreSQL's: no lock file beside the store
    assert not list((tmp_path / "shared").glob("clickhouse.shard-*.lock"))
    snapshot_row = tables.current_snapshot(store)
    states = tables.state_counts(store, snapshot_row.generation)
    assert "pending" not in states and sum(states.values()) == snapshot_row.distinct_ids
