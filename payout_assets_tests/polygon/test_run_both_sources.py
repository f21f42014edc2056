"""``payout-backfill run`` with both sources, as a user runs it: the subgraph simulator and a
local Polygon holding the demo's resolutions (some disagreeing), and a chain provider that is
down, which must not stop the subgraph's backfill but must fail the run, naming the source."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from payout_assets.warehouse import chain, tables
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets_tests.cli_helpers import cli, project_env, run
from payout_standins.demo import seed_store
from payout_standins.goldsky import run_simulator
from payout_standins.goldsky.server import SimulatorConfig
from payout_standins.polygon import LocalPolygon
from payout_standins.polygon.chain import free_port
from payout_standins.polygon.demo_chain import seed_chain

pytestmark = pytest.mark.e2e
IDS = 3_000


def _env(home: Path, sim_url: str, rpc_url: str) -> dict[str, str]:
    return project_env(
        home,
        sim_url,
        PAYOUT_SHARDS="2",
        PAYOUT_SOURCES="goldsky,polygon",
        POLYGON_RPC_URL=rpc_url,
        POLYGON_START_BLOCK="0",
        POLYGON_RANGE_BLOCKS="10",
        POLYGON_MAX_RPS="200",
        POLYGON_MAX_ATTEMPTS="2",
    )


def test_both_sources_land_in_the_view_with_their_disagreements(
    chain_node: LocalPolygon, tmp_path: Path
) -> None:
    with run_simulator(SimulatorConfig(size=2 * IDS, seed=11)) as sim:
        env = _env(tmp_path / "home", sim.url, chain_node.url)
        store = ClickHouseStore(env["CLICKHOUSE_DSN"])
        seed_store(store, sim.universe, IDS)
        seeded = seed_chain(chain_node, sim.universe, IDS)
        log = tmp_path / "run.log"
        code = run(cli("run"), env, log, timeout=600)
    output = log.read_text()
    assert code == 0, output[-3000:]
    status_log = tmp_path / "status.log"
    assert run(cli("status"), env, status_log, timeout=120) == 0
    assert (
        f"blocks 0..{chain_node.finalized():,} covered ({chain_node.finalized() + 1:,} blocks), "
        f"{seeded.resolutions:,} ConditionResolution events found"
    ) in status_log.read_text()
    by_source = {s: n for s, n, _ in tables.truth_summary(store)}
    assert set(by_source) == {"market_resolutions_final", "polygon", "goldsky"}
    ((chain_rows,),) = store.query_rows(
        "SELECT count() FROM payout_backfill.polygon_resolutions FINAL"
    )
    assert chain_rows == seeded.resolutions
    assert chain.disagreement_count(store) >= seeded.disagreeing > 0
    # ids only the chain resolved were still asked of the subgraph, which called them unresolved
    snapshot = tables.current_snapshot(store)
    assert snapshot is not None
    ((asked_anyway,),) = store.query_rows(
        "SELECT count() FROM payout_backfill.ledger_resolved_by WHERE generation = {g:String}"
        " AND resolved_by = 'polygon' AND state = 'unresolved'",
        {"g": snapshot.generation},
    )
    assert asked_anyway == seeded.chain_only
    # the chain's ranges are partitions of the instance, each materialised
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    try:
        keys = instance.get_dynamic_partitions("polygon_block_ranges")
        done = instance.get_materialized_partitions(dg.AssetKey("polygon_condition_resolutions"))
    finally:
        instance.dispose()
    assert len(keys) > 1 and set(keys) == set(done)


def test_a_chain_provider_that_is_down_fails_the_run_but_not_the_subgraph(
    tmp_path: Path,
) -> None:
    with run_simulator(SimulatorConfig(size=2 * IDS, seed=11)) as sim:
        env = _env(tmp_path / "home", sim.url, f"http://127.0.0.1:{free_port()}")
        store = ClickHouseStore(env["CLICKHOUSE_DSN"])
        seed_store(store, sim.universe, IDS)
        log = tmp_path / "run.log"
        code = run(cli("run"), env, log, timeout=600)
    output = log.read_text()
    assert code == 1, output[-3000:]
    assert "source polygon FAILED: the Polygon provider did not give its finalized block" in output
    ((ingested,),) = store.query_rows(
        "SELECT count() FROM default.resolutions_external_ingest FINAL"
    )
    assert ingested > 0
    assert {s for s, _, _ in tables.truth_summary(store)} == {"market_resolutions_final", "goldsky"}
