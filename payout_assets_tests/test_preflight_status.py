"""`payout-backfill preflight` and `status` (and the `preflight` Dagster job): PASS against a
demo-like store and the simulator, a FAIL with the right fix and exit code for each way a setup
breaks, no secret ever printed; status before, during and after a real `payout-backfill run`."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest

from payout_assets.cli.checkpoint import ShardCheckpoint
from payout_assets.cli.status import collect_status, render, shard_state
from payout_assets.defs.preflight import preflight as preflight_job
from payout_assets.preflight import goldsky as pf_goldsky
from payout_assets.preflight import ids as pf_ids
from payout_assets.preflight import result as pf
from payout_assets.preflight import run as pf_run
from payout_assets.sources.goldsky.client import ClientSettings, Dialect, SubgraphMeta
from payout_assets.sources.goldsky.resource import GoldskyResource
from payout_assets.sources.ids import IdSourceResource
from payout_assets.sources.polygon.resource import PolygonResource
from payout_assets.warehouse import tables
from payout_assets.warehouse.resource import ClickHouseResource
from payout_assets.warehouse.sql import load_sql
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets_tests.cli_helpers import cli, project_env, run, start
from payout_standins.demo import seed_store
from payout_standins.goldsky import FaultKind, FaultRule, Simulator, SimulatorConfig, run_simulator
from payout_standins.procs import stop_group

pytestmark = pytest.mark.e2e

PASSWORD = "pw-" + uuid.uuid4().hex[:10]
API_KEY = "key-" + uuid.uuid4().hex[:10]
HEADER_VALUE = "hdr-" + uuid.uuid4().hex[:10]


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fail_line(output: str, name: str) -> str:
    """The FAIL block of check ``name`` (its line and the wrapped continuation lines)."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"FAIL  {name}:"):
            block = [line]
            for nxt in lines[i + 1 :]:
                if not nxt.startswith("      "):
                    break
                block.append(nxt.strip())
            return " ".join(block)
    raise AssertionError(f"no FAIL line for {name!r} in:\n{output}")


@pytest.fixture
def pnl_sim() -> Iterator[Simulator]:
    with run_simulator(SimulatorConfig(size=5_000, seed=7)) as sim:
        yield sim


@pytest.fixture
def legacy_sim() -> Iterator[Simulator]:
    with run_simulator(SimulatorConfig(size=2_000, seed=7, dialect="legacy")) as sim:
        yield sim


@pytest.fixture
def demo_store(tmp_path: Path, pnl_sim: Simulator) -> ClickHouseStore:
    """The demo's source tables (trades_raw universe, market_resolutions_final) in a fresh home."""
    store = ClickHouseStore(f"chdb://{tmp_path / 'home' / 'clickhouse'}")
    seed_store(store, pnl_sim.universe, 1_500)
    return store


def _settings(endpoint: str, dialect: Dialect = Dialect.PNL, **extra: Any) -> ClientSettings:
    return ClientSettings(endpoint=endpoint, dialect=dialect, max_rps=200.0, **extra)


def _inputs(
    store: ClickHouseStore, settings: ClientSettings, **extra: Any
) -> pf_run.PreflightInputs:
    return pf_run.PreflightInputs(
        store=store,
        settings=settings,
        ids_file=extra.pop("ids_file", None),
        universe_sql=load_sql("condition_universe.sql"),
        shards=extra.pop("shards", 8),
        **extra,
    )


# -- the command line: exit codes, fixes, secrets ------------------------------------------------


def test_preflight_cli_passes_on_the_demo_and_fails_clearly_on_broken_setups(
    tmp_path: Path, pnl_sim: Simulator, legacy_sim: Simulator, demo_store: ClickHouseStore
) -> None:
    env = project_env(tmp_path / "home", pnl_sim.url, GOLDSKY_API_KEY=API_KEY)
    broken_home = tmp_path / "broken"
    broken = ClickHouseStore(f"chdb://{broken_home / 'clickhouse'}")
    seed_store(broken, pnl_sim.universe, 200)
    with broken.session() as client:
        client.command("DROP TABLE default.market_resolutions_final")
    port = closed_port()
    cases: dict[str, dict[str, str]] = {
        "ok": env,
        # Nothing listens: the DSN (with a password) and the endpoint (with an API key and a
        # secret header) both fail, each with its fix, and no secret is printed.
        "unreachable": {
            **env,
            "CLICKHOUSE_DSN": f"http://default:{PASSWORD}@127.0.0.1:{port}/default",
            "GOLDSKY_ENDPOINT": f"http://127.0.0.1:{port}/subgraphs/pnl-subgraph/0.0.14/gn",
            "GOLDSKY_HEADERS": json.dumps({"X-Team-Token": HEADER_VALUE}),
        },
        "missing table": project_env(broken_home, pnl_sim.url),
        "pnl client, legacy subgraph": {**env, "GOLDSKY_ENDPOINT": legacy_sim.url},
    }
    logs = {name: tmp_path / f"preflight-{i}.log" for i, name in enumerate(cases)}
    procs = {name: start(cli("preflight"), cases[name], logs[name]) for name in cases}
    try:
        codes = {name: proc.wait(timeout=120) for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            stop_group(proc, signal.SIGKILL)
    out = {name: logs[name].read_text() for name in cases}

    assert codes["ok"] == 0, out["ok"]
    assert "\nFAIL " not in out["ok"] and "OK: 0 FAIL" in out["ok"]
    for name in (
        "clickhouse reachable",
        "clickhouse writable",
        "source table default.market_resolutions_final",
        "id source (sql/condition_universe.sql)",
        "subgraph _meta",
        "subgraph schema (pnl dialect)",
    ):
        assert f"PASS  {name}:" in out["ok"], out["ok"]

    assert codes["unreachable"] == 1
    line = fail_line(out["unreachable"], "subgraph _meta")
    assert "fix: check GOLDSKY_ENDPOINT" in line and str(port) in line
    line = fail_line(out["unreachable"], "clickhouse reachable")
    assert "fix: check CLICKHOUSE_DSN" in line and "default:***@127.0.0.1" in line

    assert codes["missing table"] == 1
    line = fail_line(out["missing table"], "source table default.market_resolutions_final")
    assert "does not exist" in line and "sql/demo/source_tables.sql" in line

    assert codes["pnl client, legacy subgraph"] == 1
    line = fail_line(out["pnl client, legacy subgraph"], "subgraph schema (pnl dialect)")
    assert "set GOLDSKY_DIALECT=legacy" in line

    for text in out.values():
        assert PASSWORD not in text and API_KEY not in text and HEADER_VALUE not in text


# -- the checks themselves (in process, fast) -----------------------------------------------------


def test_wrong_source_columns_and_a_missing_universe_table_name_their_fix(
    tmp_path: Path, pnl_sim: Simulator
) -> None:
    store = ClickHouseStore(f"chdb://{tmp_path / 'clickhouse'}")
    with store.session() as client:
        client.command(
            "CREATE TABLE default.market_resolutions_final (condition_id_norm String, "
            "payout_numerators String, payout_denominator UInt8) ENGINE = MergeTree ORDER BY tuple()"
        )
    results = {r.name: r for r in pf_run.run_preflight(_inputs(store, _settings(pnl_sim.url)))}
    table = results["source table default.market_resolutions_final"]
    assert table.status is pf.Status.FAIL
    assert "`payout_numerators` is String" in table.detail
    assert "no column `winning_index`" in table.detail and "source_tables.sql" in table.fix
    # No trades_raw: the universe query fails, and the reason (the table) gets its own FAIL.
    assert results["id source (sql/condition_universe.sql)"].status is pf.Status.FAIL
    trades = results["source table default.trades_raw"]
    assert trades.status is pf.Status.FAIL
    assert "source_tables.sql" in trades.fix and "PAYOUT_IDS_FILE" in trades.fix
    assert not pf.ok(list(results.values()))


def test_legacy_client_against_pnl_subgraph(pnl_sim: Simulator) -> None:
    result = pf_goldsky.check_subgraph_schema(_settings(pnl_sim.url, Dialect.LEGACY))
    assert result.status is pf.Status.FAIL
    assert "GOLDSKY_DIALECT=pnl" in result.fix and "payouts" in result.detail


def test_ids_file_counts_and_a_missing_file(tmp_path: Path) -> None:
    good = "ab" * 32
    path = tmp_path / "ids.txt"
    path.write_text(f"{good}\n0x{good.upper()}\n\nnot-an-id\n{'cd' * 32}\n", encoding="utf-8")
    result = pf_ids.check_ids_file(str(path))
    assert result.status is pf.Status.WARN
    assert "4 ids, 2 distinct valid, 1 invalid" in result.detail
    assert pf_ids.check_ids_file(str(tmp_path / "absent.txt")).status is pf.Status.FAIL
    empty = tmp_path / "empty.txt"
    empty.write_text("nothing\n", encoding="utf-8")
    assert pf_ids.check_ids_file(str(empty)).status is pf.Status.FAIL


def _graph_node(fields: list[str]) -> httpx.MockTransport:
    """A graph-node that answers introspection with ``fields`` and any other query with []."""

    def handle(request: httpx.Request) -> httpx.Response:
        query = json.loads(request.content)["query"]
        if "__type" in query:
            return httpx.Response(
                200,
                json={
                    "data": {
                        "__type": {"name": "Condition", "fields": [{"name": f} for f in fields]}
                    }
                },
            )
        return httpx.Response(200, json={"data": {"conditions": []}})

    return httpx.MockTransport(handle)


def test_schema_check_by_introspection() -> None:
    legacy_fields = [
        "id",
        "oracle",
        "payoutNumerators",
        "payoutDenominator",
        "payouts",
        "resolutionTimestamp",
    ]
    pnl_fields = ["id", "positionIds", "payoutNumerators", "payoutDenominator"]
    url = "http://127.0.0.1:9/gn"
    wrong = pf_goldsky.check_subgraph_schema(_settings(url), transport=_graph_node(legacy_fields))
    assert wrong.status is pf.Status.FAIL and "set GOLDSKY_DIALECT=legacy" in wrong.fix
    assert "by introspection" in wrong.detail
    right = pf_goldsky.check_subgraph_schema(_settings(url), transport=_graph_node(pnl_fields))
    assert right.status is pf.Status.PASS and "by introspection" in right.detail
    legacy = pf_goldsky.check_subgraph_schema(
        _settings(url, Dialect.LEGACY), transport=_graph_node(pnl_fields)
    )
    assert (
        legacy.status is pf.Status.FAIL and "missing: payouts, resolutionTimestamp" in legacy.detail
    )
    neither = pf_goldsky.check_subgraph_schema(
        _settings(url), transport=_graph_node(["id", "name"])
    )
    assert (
        neither.status is pf.Status.FAIL
        and "lacks payoutNumerators, payoutDenominator" in neither.detail
    )


def test_indexing_errors_warn_and_a_snapshot_beyond_the_head_fails(pnl_sim: Simulator) -> None:
    pnl_sim.faults.add_rule(FaultRule(kind=FaultKind.META_INDEXING_ERRORS))
    result, meta = pf_goldsky.check_subgraph_meta(_settings(pnl_sim.url))
    assert result.status is pf.Status.WARN and "hasIndexingErrors: true" in result.detail
    assert meta is not None
    ahead = tables.Snapshot("g", meta.block_number + 10, "0x", meta.deployment, False, 8)
    assert pf_goldsky.check_snapshot_against_head(ahead, meta).status is pf.Status.FAIL
    other = SubgraphMeta(meta.block_number, "0x", None, "QmOther", False)
    behind = tables.Snapshot("g", meta.block_number - 10, "0x", meta.deployment, False, 8)
    assert pf_goldsky.check_snapshot_against_head(behind, other).status is pf.Status.WARN
    assert pf_goldsky.check_snapshot_against_head(behind, meta).status is pf.Status.PASS


def test_scrub_removes_every_secret() -> None:
    result = pf.CheckResult(
        "x", pf.Status.FAIL, f"http://u:{PASSWORD}@h/db said {API_KEY}", f"header {HEADER_VALUE}"
    )
    (clean,) = pf.scrub([result], [API_KEY, HEADER_VALUE])
    assert PASSWORD not in clean.detail and API_KEY not in clean.detail
    assert HEADER_VALUE not in clean.fix and "u:***@h" in clean.detail


# -- the Dagster job ----------------------------------------------------------------------------


def test_preflight_job_passes_and_fails_with_the_table(
    pnl_sim: Simulator,
    demo_store: ClickHouseStore,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAYOUT_SOURCES", "goldsky")

    def execute(endpoint: str) -> dg.ExecuteInProcessResult:
        return preflight_job.execute_in_process(
            resources={
                "clickhouse": ClickHouseResource(dsn=demo_store.dsn),
                "goldsky": GoldskyResource(endpoint=endpoint, max_rps=200.0),
                "id_source": IdSourceResource(),
                # the chain's checks are test_polygon_preflight's; here only the subgraph's run
                "polygon": PolygonResource(rpc_url="http://127.0.0.1:9/unused"),
            },
            instance=instance,
            raise_on_error=False,
        )

    good = execute(pnl_sim.url)
    assert good.success
    (materialization,) = [e for e in good.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = materialization.event_specific_data.metadata  # type: ignore[union-attr]
    assert metadata["failed"].value == 0
    assert "subgraph _meta" in metadata["checks"].value

    bad = execute(f"http://127.0.0.1:{closed_port()}/gn")
    assert not bad.success
    failure = bad.failure_data_for_node("preflight_checks")
    assert failure is not None
    assert "subgraph _meta" in (failure.error.message if failure.error else "")
    assert failure.user_failure_data is not None
    assert "check GOLDSKY_ENDPOINT" in failure.user_failure_data.metadata["checks"].value


# -- status -------------------------------------------------------------------------------------


def test_shard_states_from_runs_and_checkpoints() -> None:
    def last(status: str, created: float = 100.0) -> Any:
        from payout_assets.cli.status import LastRun

        return LastRun("r", "backfill_shard", status, created, None, None)

    done = ShardCheckpoint("shard-00", 1.0, 2.0, True)
    assert shard_state(None, None, None) == "missing"
    assert shard_state(last("QUEUED"), None, 50.0) == "queued"
    assert shard_state(last("NOT_STARTED"), None, 50.0) == "queued"
    assert shard_state(last("STARTED"), done, 50.0) == "running"
    assert shard_state(last("STARTING"), None, 50.0) == "running"
    assert shard_state(last("SUCCESS"), done, 50.0) == "done"
    assert shard_state(last("FAILURE"), None, 50.0) == "failed"
    assert shard_state(last("CANCELED"), None, 50.0) == "failed"
    # A failure from before the current snapshot does not make this backfill's shard failed.
    assert shard_state(last("FAILURE", created=10.0), None, 50.0) == "missing"


def test_status_counts_rows_of_a_running_shard_and_estimates(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """A shard run in flight (its Dagster run STARTED, some rows staged): rows, rate and ETA."""
    store = ClickHouseStore(f"chdb://{tmp_path / 'clickhouse'}")
    tables.create_source_tables(store)
    tables.ensure_schema(store)
    generation = str(uuid.uuid4())
    tables.record_snapshot(store, tables.Snapshot(generation, 1_000, "0x", "Qm", False, 2))
    ids = [(f"{i:064x}", i % 2, generation) for i in range(40)]
    store.insert(
        "payout_backfill.missing_condition_ids", ids, ["condition_id", "shard", "generation"]
    )
    run = instance.add_run(
        dg.DagsterRun(
            job_name="backfill_shard",
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.STARTED,
            tags={"dagster/partition": "shard-01"},
        )
    )
    now = tables.now_utc()
    shard_one = [cid for cid, shard, _ in ids if shard == 1][:8]
    blank = {"reason": "", "payout_numerators": [], "payout_denominator": 0, "winning_index": -1}
    blank |= {"resolved_at": None, "raw_numerators": [], "raw_denominator": "", "block_number": 1}
    staged = [
        [
            {
                **blank,
                "shard": 1,
                "run_id": run.run_id,
                "generation": generation,
                "condition_id": cid,
                "outcome": "resolved" if n < 5 else "rejected",
                "fetched_at": now,
            }[column]
            for column in tables.STAGING_COLUMNS
        ]
        for n, cid in enumerate(shard_one)
    ]
    tables.stage_rows(store, staged)
    record = instance.get_run_records(dg.RunsFilter(run_ids=[run.run_id]))[0]
    later = record.create_timestamp.timestamp() + 4.0
    report = collect_status(instance, store, ["shard-00", "shard-01"], now=lambda: later)
    by_key = {s.key: s for s in report.shards}
    assert by_key["shard-00"].state == "missing" and by_key["shard-00"].ids == 20
    running = by_key["shard-01"]
    assert (running.state, running.ids, running.rows, running.resolved, running.rejected) == (
        "running",
        20,
        8,
        5,
        3,
    )
    assert running.rate == pytest.approx(2.0)
    assert report.active and report.totals["remaining"] == 20 + 12
    assert report.eta_s == pytest.approx(32 / 2.0)
    text = render(report)
    assert "running" in text and "ETA 0m16s" in text


def _status_json(env: dict[str, str], log: Path) -> dict[str, Any]:
    log.write_text("")
    assert run(cli("status", "--json"), env, log, timeout=120) == 0, log.read_text()[-2000:]
    return json.loads(log.read_text().strip().splitlines()[-1])


def _json_lines(log: Path) -> int:
    return sum(1 for line in log.read_text().splitlines() if line.startswith("{"))


def test_status_before_during_and_after_a_run(tmp_path: Path) -> None:
    with run_simulator(SimulatorConfig(size=10_000, seed=5, latency_ms=1_000)) as sim:
        env = project_env(
            tmp_path / "home",
            sim.url,
            PAYOUT_SHARDS="2",
            GOLDSKY_MAX_RPS="2",
            GOLDSKY_CONCURRENCY="1",
        )
        store = ClickHouseStore(env["CLICKHOUSE_DSN"])
        seed_store(store, sim.universe, 3_000)
        status_log = tmp_path / "status.log"

        assert run(cli("status"), env, status_log, timeout=120) == 0
        before = status_log.read_text()
        assert "no snapshot yet" in before, before
        assert [line.split()[1] for line in before.splitlines() if line.startswith("shard-")] == [
            "missing",
            "missing",
        ]

        proc = start(cli("run"), env, tmp_path / "run.log")
        seen: list[dict[str, Any]] = []
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:  # a finished run shows "done": also a stop
                report = _status_json(env, status_log)
                seen.append(report)
                if any(s["state"] in {"running", "done"} for s in report["shards"]):
                    break
            assert proc.wait(timeout=240) == 0, (tmp_path / "run.log").read_text()[-3000:]
        finally:
            stop_group(proc, signal.SIGKILL)
        assert any(s["state"] in {"running", "done"} for r in seen for s in r["shards"]), seen
        for report in seen:
            if any(s["state"] == "running" for s in report["shards"]):
                assert report["active"] and "eta_s" in report

        # After: `--watch` refreshes (one JSON object per line) until Ctrl+C, then exits 0.
        watch_log = tmp_path / "watch.log"
        watcher = start(cli("status", "--watch", "0.5", "--json"), env, watch_log)
        try:
            deadline = time.monotonic() + 60
            while _json_lines(watch_log) < 2 and time.monotonic() < deadline:
                assert watcher.poll() is None, watch_log.read_text()
                time.sleep(0.1)
            os.killpg(watcher.pid, signal.SIGINT)
            assert watcher.wait(timeout=30) == 0, watch_log.read_text()
        finally:
            stop_group(watcher, signal.SIGKILL)
    assert _json_lines(watch_log) >= 2
    after = json.loads(
        [line for line in watch_log.read_text().splitlines() if line.startswith("{")][-1]
    )
    snapshot = tables.current_snapshot(store)
    assert snapshot is not None
    counts = tables.state_counts(store, snapshot.generation)
    assert [s["state"] for s in after["shards"]] == ["done", "done"]
    assert not after["active"] and after["eta_s"] is None
    totals = after["totals"]
    assert totals["ids"] == totals["rows"] == sum(tables.shard_sizes(store).values())
    assert totals["resolved"] == counts.get("ingested", 0)
    assert totals["rejected"] == counts.get("rejected", 0)
    assert after["snapshot"]["generation"] == snapshot.generation
    assert all(s["last_run"]["status"] == "SUCCESS" for s in after["shards"])
