"""The chain source against a real EVM node (anvil, chain id 137, the stand-in contract at
ConditionalTokens' address): exact vectors, the provider's caps and faults through a proxy,
continuing scans, a reorg, an interrupted scan, and the view's precedence and disagreements."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pytest

from payout_assets.defs.polygon import (
    polygon_condition_resolutions,
    polygon_hourly_scan,
    register_block_ranges,
)
from payout_assets.sources.polygon.events import CONDITION_RESOLUTION_TOPIC
from payout_assets.sources.polygon.resource import PolygonResource
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets_tests.conftest import INGEST_COLUMNS, Pipeline
from payout_standins.polygon import LocalPolygon, Resolution
from payout_standins.polygon.provider import ProviderProxy, ProviderRules

pytestmark = pytest.mark.integration

ROWS_SQL = (
    "SELECT condition_id, outcome, reason, payout_numerators, payout_denominator, winning_index,"
    " resolved_at, raw_numerators, block_number, block_hash, tx_hash, log_index"
    " FROM payout_backfill.polygon_resolutions FINAL ORDER BY block_number, log_index"
)


@pytest.fixture
def node(chain: LocalPolygon) -> Iterator[LocalPolygon]:
    """The module's chain, returned to its state before the test afterwards."""
    snapshot = chain.snapshot()
    yield chain
    chain.revert(snapshot)


def _scan_all(pipeline: Pipeline, url: str, **overrides: object) -> dg.ExecuteInProcessResult:
    pipeline.polygon_url = url
    pipeline.polygon_overrides = {"range_blocks": 1_000, **overrides}
    polygon = PolygonResource(rpc_url=url, start_block=0, **pipeline.polygon_overrides)
    with polygon.client() as client:
        finalized = int(client.call("eth_getBlockByNumber", "finalized", False)["number"], 16)
    keys = register_block_ranges(pipeline.instance, polygon, finalized)
    return pipeline.scan(*keys)


def _rows(store: ClickHouseStore) -> list[tuple]:
    return store.query_rows(ROWS_SQL)


def test_the_products_topic_is_the_one_the_evm_computes(node: LocalPolygon) -> None:
    assert node.resolution_topic() == CONDITION_RESOLUTION_TOPIC


def test_exact_vectors_with_block_time_and_position(node: LocalPolygon, pipeline: Pipeline) -> None:
    vectors = [[1, 0], [0, 1], [1, 1], [0, 1, 0], [10**18, 3 * 10**18], [2**70, 1]]
    resolved = node.resolve([Resolution(100 + i, v) for i, v in enumerate(vectors)])
    node.mine(3)
    result = _scan_all(pipeline, node.url)
    assert result.success
    rows = _rows(pipeline.store)
    assert [r[0] for r in rows] == [e.condition_id for e in resolved]
    block = node.rpc("eth_getBlockByNumber", hex(resolved[0].block_number), False)
    when = datetime.fromtimestamp(int(block["timestamp"], 16), tz=UTC).replace(tzinfo=None)
    expected = [
        ("resolved", [1, 0], 1, 0),
        ("resolved", [0, 1], 1, 1),
        ("resolved", [1, 1], 2, -1),
        ("resolved", [0, 1, 0], 1, 1),
        ("resolved", [10**18, 3 * 10**18], 4 * 10**18, -1),
        ("rejected", [], 0, -1),
    ]
    for row, event, (outcome, numerators, denominator, winner), vector in zip(
        rows, resolved, expected, vectors, strict=True
    ):
        assert (row[1], row[3], row[4], row[5]) == (outcome, numerators, denominator, winner)
        assert row[6] == when
        assert row[7] == [str(v) for v in vector]  # uint256 kept exactly
        assert (row[8], row[9], row[10], row[11]) == (
            event.block_number,
            event.block_hash,
            event.tx_hash,
            event.log_index,
        )
    assert "numerators_fit_uint64" in rows[-1][2]
    view = dict(
        pipeline.store.query_rows(
            "SELECT condition_id, source FROM cascadian_clean.vw_resolutions_truth"
        )
    )
    assert view == {e.condition_id: "polygon" for e in resolved[:-1]}


@pytest.mark.parametrize("style", ["infura", "alchemy", "quicknode", "http413"])
def test_provider_caps_shrink_the_range_and_no_range_is_read_twice(
    node: LocalPolygon, pipeline: Pipeline, style: str
) -> None:
    start = node.head() + 1
    events = []
    for i in range(6):
        events += node.resolve([Resolution(200 + 2 * i + j, [1, 0]) for j in range(2)])
        node.mine(2)
    node.mine(2)
    rules = ProviderRules(max_range=4, max_results=3, style=style)
    with ProviderProxy(node.url, rules) as proxy:
        result = _scan_all(pipeline, proxy.url, max_range=64)
    assert result.success
    assert [r[0] for r in _rows(pipeline.store)] == [e.condition_id for e in events]
    served = sorted(proxy.ranges_served)
    assert len(served) == len(set(served))
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(served))
    assert served[0][0] == 0 and served[-1][1] >= events[-1].block_number >= start


def test_429_and_5xx_are_retried(node: LocalPolygon, pipeline: Pipeline) -> None:
    events = node.resolve([Resolution(300, [0, 1])])
    node.mine(3)
    rules = ProviderRules(faults={2: 429, 3: 503, 5: 502})
    with ProviderProxy(node.url, rules) as proxy:
        result = _scan_all(pipeline, proxy.url)
    assert result.success
    assert [r[0] for r in _rows(pipeline.store)] == [events[0].condition_id]
    materialization = result.get_asset_materialization_events()[0].materialization
    assert materialization.metadata["rpc_retries"].value == 3


def test_a_second_run_reads_only_the_new_blocks(node: LocalPolygon, pipeline: Pipeline) -> None:
    first = node.resolve([Resolution(400, [1, 0])])
    node.mine(3)
    with ProviderProxy(node.url) as proxy:
        assert _scan_all(pipeline, proxy.url, max_range=2).success
        first_end = max(b for _, b in proxy.ranges_served)
        proxy.ranges_served.clear()
        second = node.resolve([Resolution(401, [0, 1])])
        node.mine(3)
        assert _scan_all(pipeline, proxy.url, max_range=2).success
        assert min(a for a, _ in proxy.ranges_served) == first_end + 1
    assert [r[0] for r in _rows(pipeline.store)] == [first[0].condition_id, second[0].condition_id]


def test_a_reorg_leaves_no_stale_row(node: LocalPolygon, pipeline: Pipeline) -> None:
    kept = node.resolve([Resolution(500, [1, 0])])
    node.mine(1)
    fork_point = node.snapshot()
    dropped = node.resolve([Resolution(501, [1, 0])])
    node.mine(3)
    assert _scan_all(pipeline, node.url).success
    assert len(_rows(pipeline.store)) == 2
    node.revert(fork_point)  # the chain forgets `dropped`: other blocks take its numbers
    replaced = node.resolve([Resolution(502, [0, 0, 1])])
    node.mine(5)
    result = _scan_all(pipeline, node.url)
    assert result.success
    rows = _rows(pipeline.store)
    assert [r[0] for r in rows] == [kept[0].condition_id, replaced[0].condition_id]
    assert dropped[0].condition_id not in {r[0] for r in rows}
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["reorg_rewinds"].value == 1


def test_an_interrupted_scan_resumes_without_gaps_or_duplicates(
    node: LocalPolygon, pipeline: Pipeline
) -> None:
    events = []
    for i in range(8):
        events += node.resolve([Resolution(600 + i, [1, 1])])
    node.mine(3)
    rules = ProviderRules(fail_element={5})
    with ProviderProxy(node.url, rules) as proxy:
        failed = _scan_all(pipeline, proxy.url, max_range=2, batch_size=2, max_attempts=1)
        assert not failed.success
        written = len(_rows(pipeline.store))
        assert 0 < written < len(events)
        proxy.ranges_served.clear()
        result = _scan_all(pipeline, proxy.url, max_range=2)
        assert result.success
        resumed_from = min(a for a, _ in proxy.ranges_served)
    rows = _rows(pipeline.store)
    assert [r[0] for r in rows] == [e.condition_id for e in events]
    assert resumed_from > 0
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed, evaluation.metadata


def test_view_precedence_and_the_disagreements(node: LocalPolygon, pipeline: Pipeline) -> None:
    both, chain_only = node.resolve([Resolution(700, [1, 0]), Resolution(701, [1, 1])])
    node.mine(3)
    assert _scan_all(pipeline, node.url).success
    store = pipeline.store
    # the subgraph says otherwise about `both`, and agrees (as [2, 2] / 4) about `chain_only`
    now = datetime.now(UTC)
    store.insert(
        "default.resolutions_external_ingest",
        [
            (both.condition_id, [0, 1], 1, 1, None, "goldsky", 1, now, "r", 1),
            (chain_only.condition_id, [2, 2], 4, -1, None, "goldsky", 1, now, "r", 1),
        ],
        INGEST_COLUMNS,
    )
    view = dict(
        store.query_rows(
            "SELECT condition_id, (source, payout_numerators) FROM cascadian_clean.vw_resolutions_truth"
        )
    )
    assert view == {
        both.condition_id: ("polygon", [1, 0]),
        chain_only.condition_id: ("polygon", [1, 1]),
    }
    disagreements = store.query_rows(
        "SELECT condition_id, source_a, numerators_a, denominator_a, source_b, numerators_b,"
        " denominator_b FROM payout_backfill.source_disagreements"
    )
    assert disagreements == [(both.condition_id, "goldsky", [0, 1], 1, "polygon", [1, 0], 1)]
    assert polygon_condition_resolutions.partitions_def is not None


def test_the_hourly_schedule_registers_new_ranges_and_asks_for_the_open_ones(
    node: LocalPolygon, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYOUT_SOURCES", "goldsky,polygon")
    node.mine(12)
    polygon = PolygonResource(rpc_url=node.url, start_block=0, range_blocks=5)
    context = dg.build_schedule_context(instance=pipeline.instance)
    first = polygon_hourly_scan(context, polygon=polygon)
    keys = pipeline.instance.get_dynamic_partitions("polygon_block_ranges")
    assert [r.partition_key for r in first] == keys  # nothing scanned yet: every range
    pipeline.polygon_url = node.url
    pipeline.polygon_overrides = {"range_blocks": 5}
    assert pipeline.scan(*keys).success
    node.mine(10)
    second = polygon_hourly_scan(context, polygon=polygon)
    new_keys = pipeline.instance.get_dynamic_partitions("polygon_block_ranges")
    assert len(new_keys) > len(keys)
    # the open range of the last scan (continued) and the ranges that did not exist then
    assert [r.partition_key for r in second] == new_keys[len(keys) - 1 :]
