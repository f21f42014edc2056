"""Helpers shared by the client tests: a template store holding one materialised snapshot of a
small simulated universe (copied per test, so the snapshot is built once per module), and readers
of what ended up in ClickHouse and in the simulator's traffic log."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from payout_assets.defs import assets
from payout_assets.sources.goldsky.client import ClientSettings, GoldskyClient
from payout_assets.warehouse import tables
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets_tests.conftest import Pipeline, settled_stats, write_ids
from payout_standins.goldsky import RequestInfo, Simulator, SimulatorConfig, run_simulator

SIM_CONFIG = SimulatorConfig(size=5_000, seed=7)
KNOWN = 1_000
UNKNOWN = 50
MAX_FIRST = 1_000


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
    tables.create_source_tables(store)
    instance = dg.DagsterInstance.ephemeral()
    try:
        with run_simulator(config) as sim:
            ids = input_ids(sim)
            Pipeline(
                store=store,
                endpoint=sim.url,
                instance=instance,
                ids_file=write_ids(root / "ids.txt", ids),
                shards=1,
            ).snapshot()
    finally:
        instance.dispose()
    snapshot = tables.current_snapshot(store)
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
        pipeline.assets(),
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


def retry_delays(pipeline: Pipeline, result: dg.ExecuteInProcessResult) -> list[float]:
    """Every backoff the client announced in the run's log ("retrying in 1.00s")."""
    return [
        float(m.group(1))
        for entry in pipeline.instance.all_logs(result.run_id)
        if (m := re.search(r"retrying in ([0-9.]+)s", entry.user_message))
    ]


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


FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.1, "max_rps": 500.0, "timeout_s": 5.0}


def fresh_pipeline(
    store: ClickHouseStore,
    sim: Simulator,
    instance: dg.DagsterInstance,
    ids: list[str],
    tmp_path: Path,
    overrides: dict[str, Any] | None = None,
    shards: int = 1,
) -> Pipeline:
    """A pipeline that will take its own snapshot of ``sim`` (for tests about the snapshot)."""
    return Pipeline(
        store=store,
        endpoint=sim.url,
        instance=instance,
        ids_file=write_ids(tmp_path / "ids.txt", ids),
        goldsky_overrides=overrides,
        shards=shards,
    )


def client_for(sim: Simulator, tmp_path: Path, **settings: Any) -> GoldskyClient:
    """A client with fast backoff and its own limiter file (client-level tests only)."""
    return GoldskyClient(
        ClientSettings(
            endpoint=sim.url,
            rate_limit_db=str(tmp_path / "rate.sqlite"),
            **{**FAST, **settings},
        )
    )


def sub_ids(sim: Simulator, n: int) -> list[str]:
    """The first ``n`` universe ids, canonical (no ``0x``)."""
    return [sim.universe.condition_id(i).removeprefix("0x") for i in range(n)]
