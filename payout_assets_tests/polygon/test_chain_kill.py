"""A chain scan killed with SIGKILL mid-range, as a crashed host or an OOM kill would: the next
``payout-backfill run`` continues after the checkpoint the killed one recorded, and the table
ends with every resolution exactly once and no gap in the checkpoints."""

from __future__ import annotations

import itertools
import signal
import time
from pathlib import Path

import pytest

from payout_assets.warehouse import chain, tables
from payout_assets.warehouse.chain import BlockRange
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets_tests.cli_helpers import cli, project_env, run, start
from payout_standins.polygon.chain import free_port
from payout_standins.polygon.synthetic import SyntheticChain, SyntheticRules
from payout_standins.procs import stop_group

pytestmark = pytest.mark.e2e

BLOCKS = 400_000  # one partition of 400,000 blocks: 40 eth_getLogs at 10 calls/s
RESOLUTIONS = 8_000


def test_a_killed_scan_resumes_after_its_checkpoint_with_every_row_once(tmp_path: Path) -> None:
    rules = SyntheticRules(blocks=BLOCKS, resolutions=RESOLUTIONS, max_rps=10)
    with SyntheticChain(rules) as provider:
        env = project_env(
            tmp_path / "home",
            f"http://127.0.0.1:{free_port()}",  # the subgraph is not asked: polygon only
            PAYOUT_SOURCES="polygon",
            POLYGON_RPC_URL=provider.url,
            POLYGON_START_BLOCK="0",
            POLYGON_RANGE_BLOCKS=str(BLOCKS),
            POLYGON_MAX_RPS="10",
        )
        store = ClickHouseStore(env["CLICKHOUSE_DSN"])
        tables.create_source_tables(store)
        log = tmp_path / "killed.log"
        proc = start(cli("run"), env, log)
        try:
            deadline = time.monotonic() + 120
            while len(provider.ranges_served) < 25 and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()[-3000:]
                time.sleep(0.02)
        finally:
            stop_group(proc, signal.SIGKILL)
        assert len(provider.ranges_served) >= 25, log.read_text()[-3000:]
        (block_range,) = [BlockRange(0, BLOCKS - 1)]
        checkpoint = chain.scanned_to(store, [block_range]).get(block_range.key)
        assert checkpoint is not None and 0 < checkpoint < BLOCKS - 1, (
            "the kill must land mid-range"
        )
        provider.ranges_served.clear()

        resumed_log = tmp_path / "resumed.log"
        assert run(cli("run"), env, resumed_log, timeout=300) == 0, resumed_log.read_text()[-3000:]
        resumed = sorted(provider.ranges_served)

    # the resume read on from the checkpoint, each range once, up to the chain's last block
    assert resumed[0][0] == checkpoint + 1
    assert all(b + 1 == a for (_, b), (a, _) in itertools.pairwise(resumed))
    assert resumed[-1][1] == BLOCKS - 1
    ((rows, ids, stored),) = store.query_rows(
        "SELECT count(), uniqExact(condition_id), (SELECT count() FROM"
        " payout_backfill.polygon_resolutions) FROM payout_backfill.polygon_resolutions FINAL"
    )
    assert rows == ids == RESOLUTIONS
    assert stored == RESOLUTIONS  # the killed run's unrecorded rows were deleted, not shadowed
    assert chain.scan_gaps(store) == []
