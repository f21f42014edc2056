"""The real command lines: `payout-backfill run` (with a kill and a resume), the single-shard
Dagster CLIs, and definition validation. Every process runs in its own group and is reaped."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from payout_assets.cli.checkpoint import shard_checkpoints
from payout_assets.defs.partitions import shard_index, shard_key
from payout_assets.warehouse import tables
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets_tests.backfills_ui import backfills, statuses_by_asset, ui_graphql
from payout_assets_tests.cli_helpers import (
    cli,
    dagster,
    dg_cli,
    materialize,
    project_env,
    run,
    start,
)
from payout_assets_tests.conftest import settled_stats, write_ids
from payout_assets_tests.payouts import ingested, snapshot_payouts
from payout_standins.demo import seed_store
from payout_standins.goldsky import Simulator, SimulatorConfig, run_simulator
from payout_standins.procs import stop_group

pytestmark = pytest.mark.e2e

SHARDS = 4


@pytest.fixture
def seeded(tmp_path: Path):
    """A simulator (slow enough to interrupt) and a DAGSTER_HOME whose store holds 6,000 ids."""
    with run_simulator(SimulatorConfig(size=20_000, seed=3, latency_ms=150)) as sim:
        home = tmp_path / "home"
        env = project_env(
            home, sim.url, PAYOUT_SHARDS=str(SHARDS), GOLDSKY_MAX_RPS="4", GOLDSKY_CONCURRENCY="1"
        )
        store = ClickHouseStore(env["CLICKHOUSE_DSN"])
        seed_store(store, sim.universe, 6_000)
        yield sim, env, store


def _kill_once_served(proc: subprocess.Popen[bytes], sim: Simulator, ids: int, log: Path) -> None:
    """SIGKILL ``proc``'s whole process group as soon as the simulator has served ``ids`` ids
    (bounded at two minutes); it must still be running by then. Returns once the simulator has
    answered every request the killed processes had already sent, so the traffic counted after
    this belongs to what runs next."""
    try:
        deadline = time.monotonic() + 120
        while sim.traffic.stats()["ids_served"] < ids and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.02)
    finally:
        stop_group(proc, signal.SIGKILL)
    settled_stats(sim, quiet_s=1.0, timeout_s=30.0)


def _unfinished_shards(env: dict[str, str], store: ClickHouseStore) -> tuple[list[str], int]:
    """The shards the Dagster instance does not record as done, and how many ids they hold."""
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    try:
        _, checkpoints = shard_checkpoints(instance, [shard_key(i) for i in range(SHARDS)])
    finally:
        instance.dispose()
    todo = [c.key for c in checkpoints if not c.done]
    shards = ",".join(str(shard_index(k)) for k in todo) or "NULL"
    ids = store.query_rows(
        f"SELECT count() FROM payout_backfill.missing_condition_ids WHERE shard IN ({shards})"
    )[0][0]
    return todo, int(ids)


def test_run_is_killed_then_resumes_without_refetching(seeded, tmp_path: Path) -> None:
    sim, env, store = seeded
    log = tmp_path / "run.log"
    # Kill the whole run (CLI, forkserver, every shard process) once shards are mid-way.
    _kill_once_served(start(cli("run"), env, log), sim, 2_500, log)
    served_before = sim.traffic.stats()["ids_served"]
    todo, todo_ids = _unfinished_shards(env, store)
    assert todo and served_before > 0, "the kill must land while shards are fetching"

    json_log = tmp_path / "resume.jsonl"
    assert run(cli("run", "--json"), env, json_log, timeout=300) == 0, json_log.read_text()[-3000:]
    stats = sim.traffic.stats()
    assert ingested(store) == snapshot_payouts(sim, store)
    _assert_json_progress(json_log, todo, todo_ids)
    # The resume fetched exactly the shards not checkpointed at the kill, each id once; the
    # shards already done were not fetched again.
    assert stats["ids_served"] - served_before == todo_ids, (todo, log.read_text()[-3000:])
    counts = tables.state_counts(store, tables.current_snapshot(store).generation)
    assert "pending" not in counts and "fetched" not in counts and "failed" not in counts
    assert sum(counts.values()) == tables.current_snapshot(store).distinct_ids

    # Done means done: a second run takes a new snapshot. Nothing changed in the subgraph since
    # the first one, so the incremental refresh asks for nothing again; with it switched off,
    # only the unresolved and unknown ids are asked again, never an ingested one.
    before = stats["ids_served"]
    assert run(cli("run"), env, log, timeout=300) == 0
    assert sim.traffic.stats()["ids_served"] == before
    second = tables.current_snapshot(store)
    again = tables.state_counts(store, second.generation)
    assert sum(again.values()) == second.distinct_ids
    assert again["unresolved"] == counts["unresolved"] and again["not_found"] == counts["not_found"]
    assert run(cli("run"), {**env, "PAYOUT_INCREMENTAL": "0"}, log, timeout=300) == 0
    unresolved = counts.get("unresolved", 0) + counts.get("not_found", 0)
    assert sim.traffic.stats()["ids_served"] - before == unresolved
    _assert_backfills_page(env, todo)


def _assert_json_progress(json_log: Path, todo: list[str], todo_ids: int) -> None:
    """`run --json`: one JSON object a line, progress ticks for the shards it ran (ids done of
    the ids they hold, never going back), and a final summary."""
    lines = [line for line in json_log.read_text().splitlines() if line.startswith("{")]
    events = [json.loads(line) for line in lines]
    ticks = [e for e in events if e["event"] == "progress"]
    assert ticks, json_log.read_text()[-3000:]
    for tick in ticks:
        assert [s["shard"] for s in tick["shards"]] == todo
        assert tick["total"] == todo_ids
    for shard in todo:
        done = [next(s for s in t["shards"] if s["shard"] == shard)["done"] for t in ticks]
        assert done == sorted(done), (shard, done)
    last = ticks[-1]
    assert last["done"] == todo_ids and last["eta_s"] == 0
    assert all(s["state"] == "done" and s["done"] == s["total"] for s in last["shards"])
    summary = events[-1]
    assert summary["event"] == "summary" and summary["ok"] is True
    assert summary["shards_run"] == todo and summary["shards_failed"] == []
    assert "pending" not in summary["ledger"] and sum(summary["ledger"].values()) > 0


def _assert_backfills_page(env: dict[str, str], resumed: list[str]) -> None:
    """The UI's Backfills page: one backfill per `payout-backfill run` (the killed one closed as
    canceled by the next run), each with its shards and runs."""
    with ui_graphql(env) as (query, _instance, _workspace):
        shown = backfills(query)
    assert len(shown) == 4, [(b["id"], b["status"]) for b in shown]
    killed, resume, *later = reversed(shown)  # newest first on the page
    every = [shard_key(i) for i in range(SHARDS)]
    assert killed["status"] == "CANCELED" and sorted(killed["partitionNames"]) == every
    assert sorted(resume["partitionNames"]) == resumed
    for backfill in [resume, *later]:
        assert backfill["status"] == "COMPLETED_SUCCESS", backfill
        assert backfill["title"] == "payout-backfill run" and backfill["unfinishedRuns"] == []
        partitions = sorted(backfill["partitionNames"])
        assert backfill["numPartitions"] == len(partitions)
        per_asset = statuses_by_asset(backfill)
        for asset in ("goldsky_payouts", "resolutions_external_ingest"):
            assert per_asset[asset]["numPartitionsTargeted"] == len(partitions)
            assert per_asset[asset]["numPartitionsMaterialized"] == len(partitions)
            assert per_asset[asset]["numPartitionsFailed"] == 0
        assert per_asset["vw_resolutions_truth"]["materialized"]
        # its runs: one per shard, the view, and the snapshot when it took one
        runs = backfill["runs"]
        assert all(r["status"] == "SUCCESS" for r in runs)
        run_partitions = sorted(
            t["value"] for r in runs for t in r["tags"] if t["key"] == "dagster/partition"
        )
        assert run_partitions == partitions
        assert len(runs) == len(partitions) + 1 + ("missing_condition_ids" in per_asset)
    assert all(sorted(b["partitionNames"]) == every for b in later)


def test_a_shard_killed_mid_batches_is_rerun_alone(seeded, tmp_path: Path) -> None:
    sim, env, store = seeded
    log = tmp_path / "shard.log"
    assert run(materialize("missing_condition_ids"), env, log) == 0, log.read_text()[-3000:]
    shard_cmd = materialize("goldsky_payouts,resolutions_external_ingest", "shard-01")
    _kill_once_served(start(shard_cmd, env, log), sim, 500, log)
    assert run(shard_cmd, env, log) == 0, log.read_text()[-3000:]

    snapshot = tables.current_snapshot(store)
    shard_ids = {
        r[0]
        for r in store.query_rows(
            "SELECT condition_id FROM payout_backfill.missing_condition_ids WHERE shard = 1"
        )
    }
    expected = {c: v for c, v in snapshot_payouts(sim, store).items() if c in shard_ids}
    assert ingested(store) == expected
    staged = store.query_rows(
        "SELECT count(), uniqExact(condition_id), uniqExact(run_id) FROM payout_backfill.goldsky_payouts WHERE shard = 1"
    )[0]
    assert staged == (len(shard_ids), len(shard_ids), 1)  # the killed run's rows are gone
    states = dict(
        store.query_rows(
            "SELECT state, count() FROM payout_backfill.ledger_latest "
            "WHERE generation = {g:String} AND shard = 1 GROUP BY state",
            {"g": snapshot.generation},
        )
    )
    assert states.get("ingested") == len(expected)
    assert sum(states.values()) == len(shard_ids)


def test_dagster_and_dg_command_lines(seeded, tmp_path: Path) -> None:
    _sim, env, store = seeded
    log = tmp_path / "cli.log"
    assert run(dagster("definitions", "validate", "-w", "workspace.yaml"), env, log) == 0, (
        log.read_text()[-2000:]
    )
    assert run(dg_cli("check", "defs"), env, log) == 0, log.read_text()[-2000:]
    assert run(materialize("missing_condition_ids"), env, log) == 0, log.read_text()[-3000:]
    assert (
        run(
            dg_cli(
                "launch",
                "--assets",
                "goldsky_payouts,resolutions_external_ingest",
                "--partition",
                "shard-03",
            ),
            env,
            log,
        )
        == 0
    ), log.read_text()[-3000:]
    assert (
        run(
            materialize("goldsky_payouts", "shard-02"),
            env,
            log,
        )
        == 0
    ), log.read_text()[-3000:]
    shards = dict(
        store.query_rows(
            "SELECT shard, count() FROM payout_backfill.goldsky_payouts GROUP BY shard"
        )
    )
    assert set(shards) == {2, 3}
    ingested_shards = {
        r[0]
        for r in store.query_rows(
            "SELECT DISTINCT g.shard FROM default.resolutions_external_ingest AS e FINAL "
            "INNER JOIN payout_backfill.goldsky_payouts AS g ON g.condition_id = e.condition_id"
        )
    }
    assert ingested_shards == {3}  # shard-02 was fetched but its ingest was not selected


def test_a_second_run_on_the_same_store_refuses_while_the_first_runs(
    seeded, tmp_path: Path
) -> None:
    """Two `payout-backfill run`s on one store (each with its own DAGSTER_HOME, so only the store
    is shared): the second refuses at once, naming the first's pid; the first fetches each id
    once and ingests everything."""
    sim, env, store = seeded
    other = {**env, "DAGSTER_HOME": str(tmp_path / "home-b")}
    (tmp_path / "home-b").mkdir()
    first = start(cli("run"), env, tmp_path / "a.log")
    second = None
    try:
        lock = Path(store.named_lock("backfill-run").lock_file)
        for _ in range(1200):  # until the first holds the store (or has begun fetching ids)
            holds = lock.exists() and f'"pid": {first.pid}' in lock.read_text()
            if holds or sim.traffic.stats()["ids_served"] or first.poll() is not None:
                break
            time.sleep(0.1)
        assert first.poll() is None, (tmp_path / "a.log").read_text()[-3000:]
        second = start(cli("run"), other, tmp_path / "b.log")
        code = second.wait(timeout=120)
        refusal = (tmp_path / "b.log").read_text()
        assert first.poll() is None, "the first run must still hold the store"
        assert code != 0, refusal[-3000:]
        assert refusal.strip().splitlines() == [refusal.strip()], refusal[-3000:]
        assert "another payout-backfill run is running on this store" in refusal
        assert f"pid {first.pid}" in refusal
        assert first.wait(timeout=300) == 0, (tmp_path / "a.log").read_text()[-3000:]
    finally:
        stop_group(first, signal.SIGKILL)
        if second is not None:
            stop_group(second, signal.SIGKILL)

    stats = settled_stats(sim)
    assert stats["ids_served_repeated"] == 0, stats
    snapshot = tables.current_snapshot(store)
    primary = {
        r[0]
        for r in store.query_rows(
            "SELECT toString(condition_id_norm) FROM default.market_resolutions_final"
        )
    }
    expected = {}
    for (raw,) in store.query_rows("SELECT DISTINCT lower(condition_id) FROM default.trades_raw"):
        cid = raw.removeprefix("0x")
        state = sim.universe.state("0x" + cid, snapshot.block_number)
        if cid not in primary and state is not None and state.resolved:
            expected[cid] = ([int(n) for n in state.numerators or ()], int(state.denominator or 0))
    assert ingested(store) == expected
    rows, distinct = store.query_rows(
        "SELECT count(), uniqExact(condition_id) FROM cascadian_clean.vw_resolutions_truth"
    )[0]
    assert rows == distinct == len(expected) + len(primary)
    counts = tables.state_counts(store, snapshot.generation)
    assert sum(counts.values()) == snapshot.distinct_ids
    assert "pending" not in counts and "failed" not in counts


def test_workers_fork_from_a_warm_frozen_forkserver(tmp_path: Path) -> None:
    """A run's worker starts with the code location loaded, and that heap is frozen out of the
    garbage collector (else each collection in a fork writes to, and so copies, its pages)."""
    env = project_env(tmp_path / "home", "http://127.0.0.1:9/unused")
    log = tmp_path / "probe.log"
    assert run([sys.executable, "-m", "payout_assets_tests.fork_probe"], env, log, 120) == 0
    report = json.loads(log.read_text().strip().splitlines()[-1])
    assert report["has_pandera"], report
    assert report["frozen_objects"] > 100_000, report


def _closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_bad_settings_stop_every_command_with_one_line_each(tmp_path: Path) -> None:
    """Each bad setting, alone in an otherwise working environment, stops the command before
    anything starts: a non-zero exit, one line naming the variable, no traceback, no request."""
    files = {
        "empty": b"",
        "blank": b"\n   \n\t\n",
        "binary": bytes(range(256)) * 8,
    }
    for name, content in files.items():
        (tmp_path / f"{name}.txt").write_bytes(content)
    cases = [
        ("run", "PAYOUT_SHARDS", "abc"),
        ("status", "PAYOUT_SHARDS", "abc"),
        ("preflight", "PAYOUT_SHARDS", "0"),
        ("run", "CLICKHOUSE_DSN", "clickhouse://default:hunter2@127.0.0.1:notaport/db"),
        ("verify", "CLICKHOUSE_DSN", "chdb://relative/store"),
        ("status", "CLICKHOUSE_DSN", "postgres://127.0.0.1/db"),
        ("verify", "CLICKHOUSE_DSN", f"http://u:hunter2@127.0.0.1:{_closed_port()}/default"),
        ("status", "CLICKHOUSE_DSN", f"http://u:hunter2@127.0.0.1:{_closed_port()}/default"),
        ("run", "GOLDSKY_ENDPOINT", f"http://127.0.0.1:{_closed_port()}/subgraphs/x/1/gn"),
        ("run", "PAYOUT_IDS_FILE", str(tmp_path / "absent.txt")),
        ("run", "PAYOUT_IDS_FILE", str(tmp_path / "empty.txt")),
        ("run", "PAYOUT_IDS_FILE", str(tmp_path / "blank.txt")),
        ("run", "PAYOUT_IDS_FILE", str(tmp_path / "binary.txt")),
        ("run", "PAYOUT_MAX_REJECTED_SHARE", "lots"),
    ]
    with run_simulator(SimulatorConfig(size=1_000, seed=1)) as sim:
        procs = []
        for i, (command, name, value) in enumerate(cases):
            env = {**project_env(tmp_path / f"home-{i}", sim.url), name: value}
            log = tmp_path / f"case-{i}.log"
            procs.append((command, name, log, start(cli(command), env, log)))
        # Dagster's own command line loading the definitions: one line too, no traceback.
        env = {**project_env(tmp_path / "home-dagster", sim.url), "PAYOUT_SHARDS": "abc"}
        dagster_log = tmp_path / "dagster.log"
        loading = start(materialize("missing_condition_ids"), env, dagster_log)
        try:
            assert loading.wait(timeout=120) != 0
            text = dagster_log.read_text()
            assert "Traceback" not in text, text[-3000:]
            assert "Error: PAYOUT_SHARDS='abc' is not a whole number" in text, text[-3000:]
            for command, name, log, proc in procs:
                assert proc.wait(timeout=120) != 0, (command, name, log.read_text()[-2000:])
                lines = [line for line in log.read_text().splitlines() if line.strip()]
                assert len(lines) == 1, (command, name, lines[-20:])
                assert lines[0].startswith(f"payout-backfill {command}: {name}"), lines
                assert "Traceback" not in lines[0] and "hunter2" not in lines[0]
        finally:
            stop_group(loading, signal.SIGKILL)
            for *_, proc in procs:
                stop_group(proc, signal.SIGKILL)
        assert sim.traffic.stats()["ids_served"] == 0


def test_a_shard_stopped_by_a_check_says_why_on_the_terminal(tmp_path: Path) -> None:
    """`run` with one shard whose rejected share is over the limit: the terminal names the check,
    the figure and the limit, the setting and the query listing the rejected rows; the next
    `run` with another PAYOUT_SHARDS says the shard count changed and how to finish."""
    with run_simulator(SimulatorConfig(size=2_000, seed=5)) as sim:
        ids = [sim.universe.condition_id(i).removeprefix("0x") for i in range(300)]
        for cid in ids[:60]:
            sim.universe.set_override("0x" + cid, ["2", "2"], "3")
        env = project_env(
            tmp_path / "home",
            sim.url,
            PAYOUT_SHARDS="1",
            PAYOUT_IDS_FILE=str(write_ids(tmp_path / "ids.txt", ids)),
            PAYOUT_MAX_REJECTED_SHARE="0.05",
        )
        tables.create_source_tables(ClickHouseStore(env["CLICKHOUSE_DSN"]))
        log = tmp_path / "run.log"
        assert run(cli("run"), env, log, timeout=300) != 0
        text = log.read_text()
        lines = [
            s for s in text.splitlines() if "blocking check goldsky_payouts/rejected_share" in s
        ]
        assert len(lines) == 1, text[-3000:]
        assert "limit 0.05" in lines[0] and "PAYOUT_MAX_REJECTED_SHARE" in lines[0]
        assert "FROM payout_backfill.goldsky_payouts WHERE shard = 0 AND run_id = '" in lines[0]

        log = tmp_path / "again.log"
        assert run(cli("run"), {**env, "PAYOUT_SHARDS": "2"}, log, timeout=300) != 0
        text = log.read_text()
        changed = [s for s in text.splitlines() if "PAYOUT_SHARDS changed since the snapshot" in s]
        assert changed and all("set PAYOUT_SHARDS=1" in s for s in changed), text[-3000:]
        assert "Traceback" not in text
