"""``payout-backfill run`` with both sources, as a user runs it: the subgraph simulator and a
local Polygon holding the demo's resolutions (some disagreeing), then what an operator sees of
it in ``dagster dev`` (every block-range partition materialized, a UI backfill re-scanning two
ranges with the rows unchanged, the sources' disagreements on the truth view's Checks tab;
screenshots in ``artifacts/ui/``); and a chain provider that is down, which must not stop the
subgraph's backfill but must fail the run, naming the source."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

from payout_assets.warehouse import chain, tables
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets_tests.chromium import chromium_path, png_size, rendered_dom, screenshot
from payout_assets_tests.cli_helpers import cli, project_env, run
from payout_assets_tests.dagster_ui import NEVER_DURING_A_TEST, REPO_ROOT, DagsterDev
from payout_standins.demo import seed_store
from payout_standins.goldsky import run_simulator
from payout_standins.goldsky.server import SimulatorConfig
from payout_standins.polygon import LocalPolygon
from payout_standins.polygon.chain import free_port
from payout_standins.polygon.demo_chain import seed_chain

pytestmark = pytest.mark.e2e
IDS = 3_000
LOCATION = "payout_assets"
ARTIFACTS = REPO_ROOT / "artifacts" / "ui"
CHROMIUM_MISSING = "headless Chromium is not installed: run scripts/install-system-deps.sh"
SCAN = ["polygon_condition_resolutions"]
VIEW = ["vw_resolutions_truth"]
PARTITION_STATS_QUERY = """
query PartitionStats($assetKey: AssetKeyInput!) {
  assetNodes(assetKeys: [$assetKey]) {
    partitionStats { numMaterialized numPartitions numFailed numMaterializing }
  }
}
"""
CHECK_METADATA_QUERY = """
query CheckMetadata($assetKey: AssetKeyInput!, $checkName: String!) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, limit: 1) {
    status
    evaluation {
      success
      severity
      metadataEntries { label ... on IntMetadataEntry { intValue } }
    }
  }
}
"""


def _rows(store: ClickHouseStore) -> list[tuple]:
    return store.query_rows(
        "SELECT condition_id, payout_numerators, block_number, log_index"
        " FROM payout_backfill.polygon_resolutions FINAL ORDER BY block_number, log_index"
    )


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
        PAYOUT_REFRESH_CRON=NEVER_DURING_A_TEST,  # dagster dev runs the schedules
    )


@pytest.mark.ui
@pytest.mark.timeout(1200)
def test_both_sources_land_in_the_view_and_the_ui_shows_the_scan(
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

    # What an operator sees of it in dagster dev (headless Chromium: CI installs it)
    if chromium_path() is None and not os.environ.get("CI"):
        pytest.skip(CHROMIUM_MISSING)
    before = _rows(store)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    scratch = tmp_path / "cwd"
    scratch.mkdir()
    dev = DagsterDev(env=env, cwd=scratch, log_path=tmp_path / "dagster-dev.log")
    try:
        with dev:
            dev.wait_until_ready(LOCATION, timeout_s=240)
            ranges = dev.partition_keys(SCAN)
            assert len(ranges) > 2
            (node,) = dev.graphql(PARTITION_STATS_QUERY, {"assetKey": {"path": SCAN}})["assetNodes"]
            stats = node["partitionStats"]
            assert stats["numPartitions"] == stats["numMaterialized"] == len(ranges), stats
            assert stats["numFailed"] == 0

            # re-scan two ranges from the UI: same rows, the scan's check green again
            rescanned = ranges[1:3]
            backfill = dev.wait_for_backfill(dev.launch_partition_backfill([SCAN], rescanned), 420)
            assert backfill["status"] == "COMPLETED_SUCCESS", backfill
            runs = {r["runId"] for r in backfill["runs"]}
            assert all(r["status"] == "SUCCESS" for r in backfill["runs"]), backfill
            (scan_check,) = [
                e
                for e in dev.check_executions(SCAN, "scan_covers_every_block_once")
                if e["runId"] in runs
            ]
            assert scan_check["status"] == "SUCCEEDED", scan_check
            assert _rows(store) == before

            # the truth view's Checks tab: sources_agree warns with the disagreement count
            (agree,) = dev.graphql(
                CHECK_METADATA_QUERY, {"assetKey": {"path": VIEW}, "checkName": "sources_agree"}
            )["assetCheckExecutions"]
            evaluation = agree["evaluation"]
            assert (agree["status"], evaluation["severity"]) == ("FAILED", "WARN"), agree
            count = {m["label"]: m.get("intValue") for m in evaluation["metadataEntries"]}
            assert count["disagreements"] == chain.disagreement_count(store) > 0

            dev.dismiss_nux()
            profile = tmp_path / "chromium-profile"
            partitions = f"{dev.url}/assets/{SCAN[0]}?view=partitions"
            page = rendered_dom(partitions, profile)
            for text in (ranges[0], ranges[-1], "Materialized"):
                assert text in page, f"{text!r} not on {partitions}"
            checks = f"{dev.url}/assets/{VIEW[0]}?view=checks&checkDetail=sources_agree"
            assert "sources_agree" in rendered_dom(checks, profile)
            for url, name in ((partitions, "polygon-partitions"), (checks, "truth-checks")):
                path = screenshot(url, ARTIFACTS / f"{name}.png", profile)
                assert png_size(path) == (1400, 1000) and path.stat().st_size > 30_000
    finally:
        if dev.log_path.exists():
            shutil.copyfile(dev.log_path, ARTIFACTS / "dagster-dev-chain.log")


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
    assert "limits: max_attempts=2," in output  # POLYGON_MAX_ATTEMPTS reaches the client
    ((ingested,),) = store.query_rows(
        "SELECT count() FROM default.resolutions_external_ingest FINAL"
    )
    assert ingested > 0
    assert {s for s, _, _ in tables.truth_summary(store)} == {"market_resolutions_final", "goldsky"}
