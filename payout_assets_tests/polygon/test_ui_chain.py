"""The chain source as an operator sees it in ``dagster dev``: after ``payout-backfill run`` with
both sources, the scan's block-range partitions all show as materialized, a partition backfill
launched the way the UI's Materialize button sends it re-scans two ranges (rows unchanged,
the scan's check green), and the truth view's Checks tab shows the sources' disagreements.
Screenshots of both pages go to ``artifacts/ui/``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from payout_assets.warehouse import chain
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets_tests.chromium import chromium_path, png_size, rendered_dom, screenshot
from payout_assets_tests.cli_helpers import cli, project_env, run
from payout_assets_tests.dagster_ui import REPO_ROOT, DagsterDev
from payout_standins.demo import seed_store
from payout_standins.goldsky import SimulatorConfig, run_simulator
from payout_standins.polygon import LocalPolygon
from payout_standins.polygon.demo_chain import seed_chain

CHROMIUM_MISSING = "headless Chromium is not installed: run scripts/install-system-deps.sh"
pytestmark = [
    pytest.mark.ui,
    pytest.mark.skipif(
        chromium_path() is None and not os.environ.get("CI"), reason=CHROMIUM_MISSING
    ),
    pytest.mark.timeout(1200),
]

IDS = 3_000
LOCATION = "payout_assets"
ARTIFACTS = REPO_ROOT / "artifacts" / "ui"
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


def test_ui_shows_the_scan_partitions_rescans_two_and_the_disagreements(
    chain_node: LocalPolygon, tmp_path: Path
) -> None:
    assert chromium_path() is not None, CHROMIUM_MISSING
    with run_simulator(SimulatorConfig(size=2 * IDS, seed=11)) as sim:
        env = project_env(
            tmp_path / "home",
            sim.url,
            PAYOUT_SHARDS="2",
            PAYOUT_SOURCES="goldsky,polygon",
            POLYGON_RPC_URL=chain_node.url,
            POLYGON_START_BLOCK="0",
            POLYGON_RANGE_BLOCKS="10",
            POLYGON_MAX_RPS="200",
        )
        store = ClickHouseStore(env["CLICKHOUSE_DSN"])
        seed_store(store, sim.universe, IDS)
        seeded = seed_chain(chain_node, sim.universe, IDS)
        log = tmp_path / "run.log"
        assert run(cli("run"), env, log, timeout=600) == 0, log.read_text()[-3000:]
        before = _rows(store)
        assert len(before) == seeded.resolutions and seeded.disagreeing > 0

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        scratch = tmp_path / "cwd"
        scratch.mkdir()
        dev = DagsterDev(env=env, cwd=scratch, log_path=tmp_path / "dagster-dev.log")
        try:
            with dev:
                dev.wait_until_ready(LOCATION, timeout_s=240)
                keys = dev.partition_keys(SCAN)
                assert len(keys) > 2
                (node,) = dev.graphql(PARTITION_STATS_QUERY, {"assetKey": {"path": SCAN}})[
                    "assetNodes"
                ]
                stats = node["partitionStats"]
                assert stats["numPartitions"] == stats["numMaterialized"] == len(keys), stats
                assert stats["numFailed"] == 0

                # re-scan two ranges from the UI: same rows, the scan's check green again
                rescanned = keys[1:3]
                backfill = dev.wait_for_backfill(
                    dev.launch_partition_backfill([SCAN], rescanned), 420
                )
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
                for text in (keys[0], keys[-1], "Materialized"):
                    assert text in page, f"{text!r} not on {partitions}"
                checks = f"{dev.url}/assets/{VIEW[0]}?view=checks&checkDetail=sources_agree"
                assert "sources_agree" in rendered_dom(checks, profile)
                for url, name in ((partitions, "polygon-partitions"), (checks, "truth-checks")):
                    path = screenshot(url, ARTIFACTS / f"{name}.png", profile)
                    assert png_size(path) == (1400, 1000) and path.stat().st_size > 30_000
        finally:
            if dev.log_path.exists():
                shutil.copyfile(dev.log_path, ARTIFACTS / "dagster-dev-chain.log")
