"""Every transient failure of the Goldsky endpoint, end to end: the backfill still lands exactly
the right rows.

Why end to end: a retry that "works" but drops, repeats or half-writes rows is worse than a crash,
so each fault is injected into the simulator while the real ``goldsky_payouts`` and
``resolutions_external_ingest`` assets run, and the test then reads ClickHouse: the ingest table
must equal the payouts the simulator holds at the pinned block, the ledger must account for every
id, and the traffic log must show the retries and no id served twice.

Speed: the snapshot (``missing_condition_ids``) is identical for every test here, so it is
materialised once per module into a template store and each test starts from a copy of it.
Tests run one shard (``PAYOUT_SHARDS=1``) unless shards are the point.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from payout_assets.defs import assets
from payout_assets.fetch.client import GoldskyClient
from payout_assets.simulator import (
    FaultKind,
    RequestInfo,
    Simulator,
    SimulatorConfig,
    run_simulator,
)
from payout_assets.write import warehouse
from payout_assets.write.store import ClickHouseStore
from payout_assets_tests.conftest import ALL_ASSETS, Pipeline, write_ids

SIM_CONFIG = SimulatorConfig(size=5_000, seed=7)
KNOWN = 1_000
UNKNOWN = 50
MAX_FIRST = 1_000


# -- shared helpers (also used by test_client.py) -----------------------------------------------


@dataclass(frozen=True)
class Template:
    """A store holding one materialised snapshot of :data:`SIM_CONFIG`'s universe."""

    root: Path
    ids: tuple[str, ...]
    known: tuple[str, ...]
    unknown: tuple[str, ...]
    block: int
    generation: str


def input_ids(sim: Simulator, known: int = KNOWN, unknown: int = UNKNOWN) -> list[str]:
    """Canonical ids (no ``0x``) of ``known`` universe conditions and ``unknown`` absent ones."""
    return [sim.universe.condition_id(i).removeprefix("0x") for i in range(known)] + [
        sim.universe.unknown_id(j).removeprefix("0x") for j in range(unknown)
    ]


def make_template(root: Path, config: SimulatorConfig = SIM_CONFIG) -> Template:
    """Materialise ``missing_condition_ids`` (one shard) against a fresh simulator, once."""
    store = ClickHouseStore(f"chdb://{root / 'clickhouse'}")
    warehouse.create_source_tables(store)
    instance = dg.DagsterInstance.ephemeral()
    try:
        with pytest.MonkeyPatch.context() as mp, run_simulator(config) as sim:
            mp.setenv("PAYOUT_SHARDS", "1")
            ids = input_ids(sim)
            Pipeline(
                store=store,
                endpoint=sim.url,
                instance=instance,
                ids_file=write_ids(root / "ids.txt", ids),
            ).snapshot()
    finally:
        instance.dispose()
    snapshot = warehouse.current_snapshot(store)
    assert snapshot is not None and snapshot.shard_count == 1
    return Template(
        root=root,
        ids=tuple(ids),
        known=tuple(ids[:KNOWN]),
        unknown=tuple(ids[KNOWN:]),
        block=snapshot.block_number,
        generation=snapshot.generation,
    )


def copy_template(template: Template, dest: Path) -> ClickHouseStore:
    """A private store for one test, with the template's snapshot already in it.

    ``symlinks=True`` keeps the Atomic database's relative links (metadata → store/<uuid>).
    """
    shutil.copytree(template.root / "clickhouse", dest / "clickhouse", symlinks=True)
    return ClickHouseStore(f"chdb://{dest / 'clickhouse'}")


def expected_payouts(
    sim: Simulator, ids: Sequence[str], block: int
) -> dict[str, tuple[list[int], int]]:
    """What the subgraph says each resolved id's payout is as of ``block`` (pnl dialect)."""
    out: dict[str, tuple[list[int], int]] = {}
    for cid in ids:
        state = sim.universe.state("0x" + cid, block)
        if state is not None and state.resolved:
            out[cid] = ([int(n) for n in state.numerators or ()], int(state.denominator or 0))
    return out


def ingested(store: ClickHouseStore) -> dict[str, tuple[list[int], int]]:
    """``default.resolutions_external_ingest`` as the people who use it read it (FINAL)."""
    return {
        cid: (list(nums), int(den))
        for cid, nums, den in store.query_rows(
            "SELECT condition_id, payout_numerators, payout_denominator "
            "FROM default.resolutions_external_ingest FINAL"
        )
    }


def ingested_blocks(store: ClickHouseStore) -> set[int]:
    """The snapshot blocks recorded on the ingested rows."""
    return {
        int(b)
        for (b,) in store.query_rows(
            "SELECT DISTINCT block_number FROM default.resolutions_external_ingest FINAL"
        )
    }


def ledger(store: ClickHouseStore, generation: str) -> dict[str, tuple[str, str]]:
    """The latest ledger state and reason of every id of a generation."""
    return {
        cid: (state, reason)
        for cid, state, reason in store.query_rows(
            "SELECT input_id, state, reason FROM payout_backfill.ledger_latest "
            "WHERE generation = {g:String}",
            {"g": generation},
        )
    }


def clean_counts(expected: dict[str, Any], known: int, unknown: int) -> dict[str, int]:
    """Ledger counts of a backfill that worked: every id ingested, unresolved or not found."""
    counts = {"ingested": len(expected), "unresolved": known - len(expected), "not_found": unknown}
    return {k: v for k, v in counts.items() if v}


def fetch_and_ingest(pipeline: Pipeline, partition: str) -> dg.ExecuteInProcessResult:
    """One shard through the real fetch and ingest assets (checks are other tests' business)."""
    return dg.materialize(
        ALL_ASSETS,
        selection=[assets.goldsky_payouts, assets.resolutions_external_ingest],
        partition_key=partition,
        resources=pipeline.resources(),
        instance=pipeline.instance,
        raise_on_error=False,
    )


def fetch_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    """The ``goldsky_payouts`` materialisation metadata, as plain values."""
    (materialization,) = result.asset_materializations_for_node("goldsky_payouts")
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


def fetch_failure(result: dg.ExecuteInProcessResult) -> tuple[str, dict[str, Any]]:
    """Description and metadata of the ``dg.Failure`` that ``goldsky_payouts`` raised."""
    failure = result.failure_data_for_node("goldsky_payouts")
    assert failure is not None and failure.user_failure_data is not None, "no dg.Failure raised"
    data = failure.user_failure_data
    return str(data.description), {k: getattr(v, "value", v) for k, v in data.metadata.items()}


def payout_requests(sim: Simulator) -> list[Any]:
    """The traffic log's records of batch queries (``conditions``), oldest first."""
    return [r for r in sim.traffic.records() if "conditions" in r.fields]


def batch_query_with_rows(sim: Simulator) -> Callable[[RequestInfo], bool]:
    """Fault predicate: a batch query holding at least one id the subgraph has.

    Why: row-corrupting faults (duplicate or unrequested rows) cannot corrupt an empty answer,
    and ``_meta`` must stay clean so the snapshot is the one the template took.
    """
    return lambda info: (
        "conditions" in info.fields and any(sim.universe.is_known(i) for i in info.ids)
    )


def wait_for(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Poll ``condition`` until it holds, for at most ``timeout_s`` (a bounded loop)."""
    for _ in range(int(timeout_s / 0.05)):
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout_s}s")


def settled_stats(sim: Simulator) -> dict[str, Any]:
    """Traffic statistics once every request the simulator is still answering has been logged.

    Why wait: a request the client gave up on (a slow answer past its timeout) is logged only
    when the simulator finishes it, after the client has moved on.
    """
    wait_for(lambda: sim.traffic.stats()["in_flight"] == 0)
    return sim.traffic.stats()


def assert_traffic_was_clean(sim: Simulator, ids: Sequence[str], block: int) -> dict[str, Any]:
    """Every id asked for was valid and served cleanly exactly once, pinned to ``block``."""
    stats = settled_stats(sim)
    assert stats["ids_requested_distinct"] == len(ids)  # no invalid or foreign id ever sent
    assert stats["ids_served_distinct"] == len(ids)  # every id got one clean answer...
    assert stats["ids_served_repeated"] == 0  # ...and only one
    assert 0 < stats["max_first"] <= MAX_FIRST
    assert stats["collection_queries_without_first"] == 0
    assert {r.block for r in payout_requests(sim)} == {block}
    return stats


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return make_template(tmp_path_factory.mktemp("template"))


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """The template's universe (same seed, same head), with a fresh fault plan and traffic log."""
    with run_simulator(SIM_CONFIG) as simulator:
        yield simulator


@pytest.fixture
def fast_instance() -> Iterator[dg.DagsterInstance]:
    """An in-memory Dagster instance: the runs' events are all these tests read from it."""
    instance = dg.DagsterInstance.ephemeral()
    try:
        yield instance
    finally:
        instance.dispose()


@pytest.fixture
def one_shard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYOUT_SHARDS", "1")


@pytest.fixture
def snapshot_pipeline(
    template: Template,
    sim: Simulator,
    fast_instance: dg.DagsterInstance,
    tmp_path: Path,
    one_shard: None,
) -> Pipeline:
    """A pipeline whose store already holds the template's snapshot, against ``sim``."""
    return Pipeline(
        store=copy_template(template, tmp_path), endpoint=sim.url, instance=fast_instance
    )


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every backoff the client asked to sleep, recorded without changing the sleep."""
    recorded: list[float] = []
    original = GoldskyClient._sleep

    def recording_sleep(self: GoldskyClient, seconds: float) -> None:
        recorded.append(seconds)
        original(self, seconds)

    monkeypatch.setattr(GoldskyClient, "_sleep", recording_sleep)
    return recorded


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
    sleeps: list[float],
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
    assert warehouse.state_counts(store, template.generation) == clean_counts(
        expected, KNOWN, UNKNOWN
    )
    stats = assert_traffic_was_clean(sim, template.ids, template.block)
    assert stats["faults"] == {str(kind): FAULTED_REQUESTS}  # every injected fault was met
    assert fetch_metadata(result)["retries"] >= FAULTED_REQUESTS
    if params.get("retry_after"):
        assert max(sleeps) >= params["retry_after"]  # Retry-After honoured, not just backoff


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
    assert warehouse.state_counts(snapshot_pipeline.store, template.generation) == clean_counts(
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
    monkeypatch.setenv("PAYOUT_SHARDS", "2")
    # Small flushes, so the failing run has staged rows by the time its last batch gives up.
    monkeypatch.setattr("payout_assets.shard.FLUSH_ROWS", 100)
    staged: list[tuple[int, str, int]] = []  # (shard, run_id, rows) of every staging insert
    original_stage = warehouse.stage_rows

    def spy_stage(st: ClickHouseStore, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            staged.append((int(rows[0][0]), str(rows[0][1]), len(rows)))
        original_stage(st, rows)

    monkeypatch.setattr(warehouse, "stage_rows", spy_stage)
    ids = input_ids(sim, known=600, unknown=20)
    pipeline = Pipeline(
        store=store,
        endpoint=sim.url,
        instance=fast_instance,
        ids_file=write_ids(tmp_path / "ids.txt", ids),
        goldsky_overrides={"batch_size": 50, "concurrency": 2, "max_attempts": 3},
    )
    pipeline.snapshot()
    snapshot = warehouse.current_snapshot(store)
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
    assert warehouse.state_counts(store, snapshot.generation) == clean_counts(expected, 600, 20)
