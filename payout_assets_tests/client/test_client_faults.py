"""Every transient failure of the Goldsky endpoint, end to end: the backfill still lands exactly
the right rows.

Why end to end: a retry that "works" but drops, repeats or half-writes rows is worse than a crash,
so each fault is injected into the simulator while the real ``goldsky_payouts`` and
``resolutions_external_ingest`` assets run, and the test then reads ClickHouse: the ingest table
must equal the payouts the simulator holds at the pinned block, the ledger must account for every
id, and the traffic log must show the retries and no id served twice.

Speed: the snapshot (``missing_condition_ids``) is identical for every test here, so it is
materialised once per module into a template store and each test starts from a copy of it.
Tests run one shard (``Pipeline(shards=1)``) unless shards are the point.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from payout_assets.sources.goldsky import shard as goldsky_shard
from payout_assets.warehouse import tables
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets_tests.client.support import (
    KNOWN,
    UNKNOWN,
    Template,
    assert_traffic_was_clean,
    batch_query_with_rows,
    clean_counts,
    fetch_and_ingest,
    fetch_failure,
    fetch_metadata,
    ingested_blocks,
    input_ids,
    ledger,
    retry_delays,
)
from payout_assets_tests.conftest import Pipeline, write_ids
from payout_assets_tests.fetch_patches import log_staging, staging_log_entries
from payout_assets_tests.payouts import expected_payouts, ingested
from payout_standins.goldsky import (
    FaultKind,
    Simulator,
)

pytestmark = pytest.mark.integration

API_KEY = "sk-live-never-on-disk-4242"
HEADER_SECRET = "hdr-secret-never-on-disk-7373"

# -- one test per transient failure mode -----------------------------------------------------------

FAULTS = [
    pytest.param(FaultKind.HTTP_429, {}, {}, id="429-without-retry-after"),
    pytest.param(FaultKind.HTTP_429, {"retry_after": 1}, {}, id="429-with-retry-after"),
    pytest.param(FaultKind.ALLOWANCE, {"status": 200}, {}, id="allowance-text-under-200"),
    pytest.param(FaultKind.ALLOWANCE, {"status": 403}, {}, id="allowance-text-under-403"),
    pytest.param(FaultKind.ALLOWANCE, {"status": 429}, {}, id="allowance-text-under-429"),
    pytest.param(FaultKind.HTML_ERROR, {"status": 502}, {}, id="502-html"),
    pytest.param(FaultKind.HTML_ERROR, {"status": 503}, {}, id="503-html"),
    pytest.param(FaultKind.INDEXING_ERROR, {}, {}, id="indexing-error"),
    pytest.param(FaultKind.TIMEOUT, {}, {}, id="query-timed-out"),
    pytest.param(FaultKind.OVERLOADED, {}, {}, id="service-overloaded"),
    pytest.param(FaultKind.PARTIAL, {"keep": 0.5}, {}, id="partial-data-with-errors"),
    pytest.param(
        FaultKind.SLOW,
        {"delay_s": 3.0},
        {"timeout_s": 1.5, "batch_size": 350},  # three batches time out side by side
        id="slow-past-client-timeout",
    ),
    pytest.param(FaultKind.DROP, {}, {}, id="connection-closed-without-answer"),
    pytest.param(FaultKind.DROP, {"reset": True}, {}, id="connection-reset"),
    pytest.param(FaultKind.TRUNCATE, {"mode": "body"}, {}, id="truncated-json-body"),
    pytest.param(FaultKind.TRUNCATE, {"mode": "connection"}, {}, id="truncated-connection"),
    pytest.param(FaultKind.DUPLICATE_ROWS, {}, {}, id="duplicate-ids-in-answer"),
    pytest.param(FaultKind.UNREQUESTED_ROWS, {}, {}, id="unrequested-ids-in-answer"),
]
FAULTED_REQUESTS = 3


@pytest.mark.parametrize(("kind", "params", "overrides"), FAULTS)
def test_transient_fault_is_retried_and_lands_exactly_the_right_rows(
    snapshot_pipeline: Pipeline,
    sim: Simulator,
    template: Template,
    kind: FaultKind,
    params: dict[str, Any],
    overrides: dict[str, Any],
) -> None:
    """The first batch requests fail; retries recover; ClickHouse holds exactly the truth."""
    snapshot_pipeline.goldsky_overrides = overrides
    sim.faults.add(kind, count=FAULTED_REQUESTS, match=batch_query_with_rows(sim), **params)

    result = fetch_and_ingest(snapshot_pipeline, "shard-00")

    assert result.success
    store = snapshot_pipeline.store
    expected = expected_payouts(sim, template.ids, template.block)
    assert ingested(store) == expected
    assert ingested_blocks(store) == {template.block}
    assert tables.state_counts(store, template.generation) == clean_counts(expected, KNOWN, UNKNOWN)
    stats = assert_traffic_was_clean(sim, template.ids, template.block)
    assert stats["faults"] == {str(kind): FAULTED_REQUESTS}  # every injected fault was met
    assert fetch_metadata(result)["retries"] >= FAULTED_REQUESTS
    if params.get("retry_after"):  # Retry-After honoured, not just backoff
        assert max(retry_delays(snapshot_pipeline, result)) >= params["retry_after"]


def test_random_faults_of_every_kind_still_land_exactly_the_right_rows(
    snapshot_pipeline: Pipeline, sim: Simulator, template: Template
) -> None:
    """A seeded storm of every transient fault at once, on small batches, with more attempts."""
    snapshot_pipeline.goldsky_overrides = {"batch_size": 250, "max_attempts": 12}
    kinds: list[tuple[FaultKind, dict[str, Any]]] = [
        (FaultKind.HTTP_429, {"retry_after": 0}),
        (FaultKind.ALLOWANCE, {"status": 200}),
        (FaultKind.ALLOWANCE, {"status": 403}),
        (FaultKind.HTML_ERROR, {"status": 502}),
        (FaultKind.INDEXING_ERROR, {}),
        (FaultKind.TIMEOUT, {}),
        (FaultKind.OVERLOADED, {}),
        (FaultKind.PARTIAL, {}),
        (FaultKind.DROP, {}),
        (FaultKind.TRUNCATE, {"mode": "body"}),
        (FaultKind.TRUNCATE, {"mode": "connection"}),
        (FaultKind.DUPLICATE_ROWS, {}),
        (FaultKind.UNREQUESTED_ROWS, {}),
    ]
    for kind, params in kinds:
        sim.faults.add(kind, probability=0.03, match=batch_query_with_rows(sim), **params)

    result = fetch_and_ingest(snapshot_pipeline, "shard-00")

    assert result.success
    expected = expected_payouts(sim, template.ids, template.block)
    assert ingested(snapshot_pipeline.store) == expected
    assert tables.state_counts(snapshot_pipeline.store, template.generation) == clean_counts(
        expected, KNOWN, UNKNOWN
    )
    stats = assert_traffic_was_clean(sim, template.ids, template.block)
    assert sum(stats["faults"].values()) >= 2  # the storm did happen
    assert fetch_metadata(result)["retries"] >= sum(stats["faults"].values())


# -- a batch that keeps failing --------------------------------------------------------------------


def test_batch_failing_past_its_retries_fails_the_shard_and_writes_nothing(
    store: ClickHouseStore,
    sim: Simulator,
    fast_instance: dg.DagsterInstance,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One batch of shard-01 never gets a good answer: shard-01 fails with that batch's ids in
    its failure metadata and ledger, keeps no staged or ingested row, and shard-00 is untouched.
    Clearing the fault and re-running shard-01 alone completes the backfill."""
    # Small flushes, so the failing run has staged rows by the time its last batch gives up;
    # every staging insert is logged as (shard, run_id, rows).
    staging_log = tmp_path / "staging.jsonl"
    monkeypatch.setattr(goldsky_shard, "FLUSH_ROWS", 100)
    log_staging(monkeypatch, staging_log)
    ids = input_ids(sim, known=600, unknown=20)
    pipeline = Pipeline(
        store=store,
        endpoint=sim.url,
        instance=fast_instance,
        ids_file=write_ids(tmp_path / "ids.txt", ids),
        goldsky_overrides={"batch_size": 50, "concurrency": 2, "max_attempts": 3},
        shards=2,
    )
    pipeline.snapshot()
    snapshot = tables.current_snapshot(store)
    assert snapshot is not None
    shard_ids = {
        s: [
            c
            for (c,) in store.query_rows(
                "SELECT condition_id FROM payout_backfill.missing_condition_ids "
                "WHERE shard = {s:UInt16} ORDER BY condition_id",
                {"s": s},
            )
        ]
        for s in (0, 1)
    }
    batches = [shard_ids[1][i : i + 50] for i in range(0, len(shard_ids[1]), 50)]
    failing = batches[-1]  # the last batch: earlier ones have been staged when it gives up
    trigger = "0x" + failing[0]
    rule = sim.faults.add(FaultKind.OVERLOADED, match=lambda info: trigger in info.ids)

    assert fetch_and_ingest(pipeline, "shard-00").success
    result = fetch_and_ingest(pipeline, "shard-01")

    assert not result.success
    description, metadata = fetch_failure(result)
    assert "service is overloaded" in description and "gave up after 3 attempts" in description
    assert metadata["failed_batch_size"] == len(failing)
    assert re.findall(r"`([0-9a-f]{64})`", metadata["failed_batch_ids"]) == failing
    assert rule.fired == 3  # the failing batch was asked exactly max_attempts times

    run_id = result.run_id
    staged = staging_log_entries(staging_log)
    assert any(s == 1 and run == run_id and n > 0 for s, run, n in staged)  # rows were staged...
    assert (
        store.query_rows("SELECT count() FROM payout_backfill.goldsky_payouts WHERE shard = 1")[0][
            0
        ]
        == 0
    )  # ...and dropped with the failed run
    expected = expected_payouts(sim, ids, snapshot.block_number)
    expected_00 = {c: v for c, v in expected.items() if c in set(shard_ids[0])}
    assert ingested(store) == expected_00  # shard-00's rows, none of shard-01's

    states = ledger(store, snapshot.generation)
    for cid in failing:
        state, reason = states[cid]
        assert state == "failed"
        assert "service is overloaded" in reason
    assert {states[c][0] for c in shard_ids[1]} == {"failed"}
    assert "failed" not in {states[c][0] for c in shard_ids[0]}

    sim.faults.clear()
    rerun = fetch_and_ingest(pipeline, "shard-01")

    assert rerun.success
    assert ingested(store) == expected
    assert tables.state_counts(store, snapshot.generation) == clean_counts(expected, 600, 20)
