"""Runs executed by dagster-celery workers: long-lived worker process trees stand in for
hosts (each its own DAGSTER_HOME and temp dir), taking the runs another "host" submits through
the instance's CeleryRunLauncher, with Debian's redis-server as the broker and PostgreSQL as the
instance (deploy/celery/)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
from payout_standins.goldsky import (
    FaultKind,
    FaultRule,
    Simulator,
    SimulatorConfig,
    run_simulator,
)
from payout_standins.procs import stop_group

pytestmark = pytest.mark.e2e

SHARDS = 4
MAX_RPS = 4
CELERY = PROJECT_ROOT / "deploy" / "celery"
MODULE = ["-m", "payout_assets.definitions"]
MAX_RUNTIME_S = 20  # the lost worker's run: long enough for its fetch to start first


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


def _shard_ids(store: ClickHouseStore, shard: int) -> set[str]:
    query = (
        "SELECT condition_id FROM payout_backfill.missing_condition_ids WHERE shard = {s:UInt16}"
    )
    return {"0x" + c for (c,) in store.query_rows(query, parameters={"s": shard})}


def _logged(instance: dg.DagsterInstance, run: dg.DagsterRun, text: str) -> bool:
    return any(text in e.message for e in instance.all_logs(run.run_id))


@dataclass
class Hosts:
    """Celery workers standing in for hosts, the host that submits runs, and what they share."""

    launcher: dict[str, str]
    shared: dict[str, str]
    store: ClickHouseStore
    instance: dg.DagsterInstance
    workers: list[subprocess.Popen[bytes]]
    logs: Path
    worker_envs: list[dict[str, str]]


@contextmanager
def _hosts(
    tmp_path: Path,
    sim: Simulator,
    pg_url: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
    instance_yaml: Path = CELERY / "dagster.yaml",
    shards: int = SHARDS,
) -> Iterator[Hosts]:
    """A launching host and ``workers`` Celery workers, each its own DAGSTER_HOME and temp dir,
    sharing the store, the instance's PostgreSQL, Redis and the simulator; the store is seeded.
    The workers are stopped on the way out."""
    base = redis_url.rsplit("/", 1)[0]
    shared = {
        "CLICKHOUSE_DSN": f"chdb://{tmp_path / 'shared' / 'clickhouse'}",
        "DAGSTER_PG_URL": pg_url,
        "PAYOUT_REDIS_URL": f"{base}/0",
        "DAGSTER_CELERY_BROKER_URL": f"{base}/1",
        "DAGSTER_CELERY_BACKEND_URL": f"{base}/2",
        "PAYOUT_SHARDS": str(shards),
        "GOLDSKY_MAX_RPS": str(MAX_RPS),
        "PAYOUT_REFRESH_CRON": "0 0 1 1 *",  # no scheduled snapshot while a test runs
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    names = ["launcher", *(f"w{i}" for i in range(1, workers + 1))]
    launcher, *envs = (host_env(tmp_path, n, sim.url, instance_yaml, **shared) for n in names)
    store = ClickHouseStore(shared["CLICKHOUSE_DSN"])
    seed_store(store, sim.universe, 8_000)
    for name in ("DAGSTER_PG_URL", "DAGSTER_CELERY_BROKER_URL", "DAGSTER_CELERY_BACKEND_URL"):
        monkeypatch.setenv(name, shared[name])  # this process reads the instance too
    # the instance's tables exist before several hosts reach for them at once
    dg.DagsterInstance.from_config(launcher["DAGSTER_HOME"]).dispose()
    procs = [_worker(env, f"w{i}@%h", logs / f"w{i}.log") for i, env in enumerate(envs, 1)]
    instance = dg.DagsterInstance.from_config(launcher["DAGSTER_HOME"])
    try:
        yield Hosts(launcher, shared, store, instance, procs, logs, envs)
    finally:
        instance.dispose()
        for proc in procs:
            stop_group(proc)


def test_runs_execute_on_two_celery_workers_sharing_only_the_services(
    tmp_path: Path, pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = SimulatorConfig(size=20_000, seed=9, latency_ms=50, rate_limit=(MAX_RPS, 1.0))
    with run_simulator(config) as sim:
        with _hosts(tmp_path, sim, pg_url, redis_url, monkeypatch, workers=2) as hosts:
            launcher, shared, store = hosts.launcher, hosts.shared, hosts.store
            instance, procs, logs = hosts.instance, hosts.workers, hosts.logs
            log = logs / "launch.log"
            launch = ["job", "launch", *MODULE]
            assert run(dagster(*launch, "-j", "refresh_missing_ids"), launcher, log) == 0
            (snapshot,) = _wait_for_runs(instance, 1, 120, procs)
            assert snapshot.status == dg.DagsterRunStatus.SUCCESS, log.read_text()[-3000:]

            # shard-01 launched twice at once (two hosts asking for it), then every other shard;
            # shard-01's first answer is slow, so whichever run fetches first holds its lock
            # while the other run reaches for it
            shard_01 = _shard_ids(store, 1)
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


def _monitored_instance_yaml(tmp_path: Path) -> Path:
    """deploy/celery/dagster.yaml with run monitoring polled every second instead of every 30."""
    text = (CELERY / "dagster.yaml").read_text()
    assert "poll_interval_seconds: 30" in text
    path = tmp_path / "dagster.yaml"
    path.write_text(text.replace("poll_interval_seconds: 30", "poll_interval_seconds: 1"))
    return path


def _run_pid(instance: dg.DagsterInstance, run_id: str, timeout_s: float) -> int:
    """The pid Dagster recorded for a run's process (its "Started process for run" event)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for event in instance.all_logs(run_id):
            found = re.search(r"Started process for run \(pid: (\d+)\)", event.message)
            if found:
                return int(found.group(1))
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} recorded no process in {timeout_s} s")


def _wait_fired(rule: FaultRule, what: str) -> None:
    deadline = time.monotonic() + 60
    while not rule.fired and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rule.fired, f"{what} never asked for its ids"


def _wait_for_status(
    instance: dg.DagsterInstance, run_id: str, status: dg.DagsterRunStatus, timeout_s: float
) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout_s
    while True:
        found = instance.get_run_by_id(run_id)
        assert found is not None
        if found.status == status or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_a_worker_killed_mid_shard_fails_its_run_and_a_rerun_completes(
    tmp_path: Path, pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process running shard-01 on a Celery worker is SIGKILLed mid-fetch (as the kernel's
    OOM killer would): Celery records the task failed, Dagster's run monitoring (the daemon, as
    deployed) marks the run failed, and a re-run of the shard on the same worker completes. Then
    the whole worker dies while it runs shard-00: the run's max runtime fails it, and the
    re-run on the host's new worker completes."""
    config = SimulatorConfig(size=8_000, seed=5, latency_ms=20)
    yaml = _monitored_instance_yaml(tmp_path)
    with (
        run_simulator(config) as sim,
        _hosts(tmp_path, sim, pg_url, redis_url, monkeypatch, 1, yaml, shards=2) as hosts,
    ):
        launcher, store, instance = hosts.launcher, hosts.store, hosts.instance
        log = hosts.logs / "launch.log"
        daemon = start(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            launcher,
            hosts.logs / "daemon.log",
        )
        try:
            launch = ["job", "launch", *MODULE]
            assert run(dagster(*launch, "-j", "refresh_missing_ids"), launcher, log) == 0
            (snapshot,) = _wait_for_runs(instance, 1, 120, hosts.workers)
            assert snapshot.status == dg.DagsterRunStatus.SUCCESS

            shard_01 = _shard_ids(store, 1)
            hang = sim.faults.add(
                FaultKind.SLOW, delay_s=20.0, match=lambda info: shard_01 & set(info.ids)
            )
            one = dagster(*launch, "-j", "backfill_shard", "--tags", _partition(1))
            assert run(one, launcher, log) == 0
            (killed,) = instance.get_runs(dg.RunsFilter(job_name="backfill_shard"))
            pid = _run_pid(instance, killed.run_id, 120)
            _wait_fired(hang, "shard-01")
            os.kill(pid, signal.SIGKILL)
            sim.faults.remove(hang.rule_id)

            failed = _wait_for_status(instance, killed.run_id, dg.DagsterRunStatus.FAILURE, 60)
            assert failed.status == dg.DagsterRunStatus.FAILURE, hosts.logs.joinpath(
                "daemon.log"
            ).read_text()[-3000:]
            assert _logged(instance, failed, "Detected run worker status")
            assert shard_key(1) not in instance.get_materialized_partitions(
                dg.AssetKey("goldsky_payouts")
            )

            # the worker replaced its pool process and takes the re-run
            assert run(one, launcher, log) == 0
            _wait_for_runs(instance, 3, 120, hosts.workers)

            # a whole worker lost, its main process too: Celery's backend keeps the task STARTED,
            # so the run looks alive until its max runtime (dagster/max_runtime) runs out, and
            # monitoring fails it; the host's new worker takes the re-run
            shard_00 = _shard_ids(store, 0)
            hang = sim.faults.add(
                FaultKind.SLOW, delay_s=30.0, match=lambda info: shard_00 & set(info.ids)
            )
            tags = {"dagster/partition": shard_key(0), "dagster/max_runtime": str(MAX_RUNTIME_S)}
            launch_00 = dagster(*launch, "-j", "backfill_shard", "--tags", json.dumps(tags))
            assert run(launch_00, launcher, log) == 0
            _wait_fired(hang, "shard-00")
            stop_group(hosts.workers.pop(), signal.SIGKILL)
            sim.faults.remove(hang.rule_id)
            hosts.workers.append(_worker(hosts.worker_envs[0], "w2@%h", hosts.logs / "w2.log"))
            (lost,) = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
            assert lost.tags["dagster/partition"] == shard_key(0)
            failed = _wait_for_status(
                instance, lost.run_id, dg.DagsterRunStatus.FAILURE, MAX_RUNTIME_S + 60
            )
            assert failed.status == dg.DagsterRunStatus.FAILURE
            assert _logged(instance, failed, "Exceeded maximum runtime")
            shard_00_again = dagster(*launch, "-j", "backfill_shard", "--tags", _partition(0))
            assert run(shard_00_again, launcher, log) == 0
            _wait_for_runs(instance, 5, 240, hosts.workers)
            assert run(dagster(*launch, "-j", "publish_truth_view"), launcher, log) == 0
            runs = _wait_for_runs(instance, 6, 120, hosts.workers)
            statuses = sorted(r.status.value for r in runs)
            assert statuses == ["FAILURE"] * 2 + ["SUCCESS"] * 4, statuses
        finally:
            stop_group(daemon)

    assert ingested(store) == snapshot_payouts(sim, store)
    staged = store.query_rows(
        "SELECT shard, uniqExact(run_id), count() = uniqExact(condition_id) "
        "FROM payout_backfill.goldsky_payouts GROUP BY shard ORDER BY shard"
    )
    assert staged == [(0, 1, 1), (1, 1, 1)]  # each shard's rows are its re-run's only
    snapshot_row = tables.current_snapshot(store)
    states = tables.state_counts(store, snapshot_row.generation)
    assert "pending" not in states and sum(states.values()) == snapshot_row.distinct_ids
