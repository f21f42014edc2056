"""The warehouse operations the assets perform, each a named SQL file under ``sql/``.

Python never holds more than one chunk or batch: ids move between tables inside ClickHouse, and
what Python reads it reads by keyset in bounded chunks.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from payout_assets.warehouse import schema
from payout_assets.warehouse.sql import load_sql, sql_dir
from payout_assets.warehouse.store import ClickHouseStore, StoreError

STAGING_TABLE = "payout_backfill.goldsky_payouts"
LEDGER_TABLE = "payout_backfill.id_ledger"
SOURCE_TABLE = "default.market_resolutions_final"
STAGING_COLUMNS = [
    "shard",
    "run_id",
    "generation",
    "condition_id",
    "outcome",
    "reason",
    "payout_numerators",
    "payout_denominator",
    "winning_index",
    "resolved_at",
    "raw_numerators",
    "raw_denominator",
    "block_number",
    "fetched_at",
]
LEDGER_COLUMNS = [
    "generation",
    "input_id",
    "state",
    "reason",
    "shard",
    "run_id",
    "version",
    "recorded_at",
]
SLICE_IDS = 16_384  # ids per slice of a shard run (sql/shard/slices.sql)
RunSlice = Mapping[str, Any]  # the query parameters of one slice: shard, run_id, lo, hi


class MissingSourceError(StoreError):
    """A table the pipeline reads does not exist; the message says how to create it."""


def new_version() -> int:
    """A ledger / ingest version: nanoseconds, so a later write always wins."""
    return time.time_ns()


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Snapshot:
    generation: str
    block_number: int
    block_hash: str
    deployment: str
    has_indexing_errors: bool
    shard_count: int
    input_rows: int = 0
    distinct_ids: int = 0


def ensure_schema(store: ClickHouseStore) -> None:
    """Make sure the pipeline's databases, tables and views exist, at this release's schema
    version: every step calls it, so when the store is current it only reads (no DDL, no
    metadata file rewritten; see write/schema.py for why that matters on a full disk).

    The truth view reads ``default.market_resolutions_final``; if that table is missing the
    pipeline stops here with the fix, instead of failing later with an engine error.
    """
    with store.session():
        if not store.table_exists(SOURCE_TABLE):
            raise MissingSourceError(
                f"{SOURCE_TABLE} does not exist in {store.display_dsn}. It is the primary payout "
                f"source the truth view unions with; create it with the DDL in "
                f"{sql_dir() / 'demo' / 'source_tables.sql'} (the demo does this) or point "
                "CLICKHOUSE_DSN at the database that has it."
            )
        schema.migrate(store)


def create_source_tables(store: ClickHouseStore) -> None:
    """The production source tables, for the demo, the benchmark and the tests."""
    store.run_file("demo/source_tables.sql")


# -- missing_condition_ids --------------------------------------------------------------------


def scratch_names(generation: str) -> dict[str, str]:
    suffix = uuid.UUID(generation).hex if _is_uuid(generation) else uuid.uuid4().hex
    return {
        "db": "payout_backfill",
        "candidates": f"candidates_{suffix}",
        "changed": f"changed_{suffix}",
        "unchanged": f"unchanged_{suffix}",
        "next": f"missing_next_{suffix}",
    }


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def load_universe(store: ClickHouseStore, generation: str, universe_sql: str) -> None:
    """Copy the universe query's ids into the generation's raw input, inside ClickHouse."""
    sql = load_sql("missing/load_universe.sql").replace(
        "__UNIVERSE__", universe_sql.strip().rstrip(";")
    )
    with store.session() as client:
        client.command(sql.strip().rstrip(";"), parameters={"generation": generation})


def load_input_lines(store: ClickHouseStore, generation: str, lines: Sequence[str]) -> None:
    store.insert(
        "payout_backfill.id_input", [(generation, line) for line in lines], ["generation", "raw_id"]
    )


def input_count(store: ClickHouseStore, generation: str) -> int:
    return int(store.query_file("missing/input_count.sql", {"generation": generation})[0][0])


def iter_input_chunks(
    store: ClickHouseStore, generation: str, chunk: int = 50_000
) -> Iterator[list[str]]:
    chunks = store.spool_file("missing/read_input.sql", {"generation": generation}, chunk)
    return ([r[0] for r in rows] for rows in chunks)


def create_candidates(store: ClickHouseStore, names: dict[str, str]) -> None:
    store.ensure_room_for_ddl("creating the snapshot's scratch tables")
    store.run_file("missing/create_candidates.sql", names)


def add_candidates(
    store: ClickHouseStore, names: dict[str, str], candidates: Sequence[tuple[str, str]]
) -> None:
    """(id or trimmed text, reason) pairs; the reason is empty for a valid id."""
    store.insert(f"{names['db']}.{names['candidates']}", candidates, ["condition_id", "reason"])


def record_states(
    store: ClickHouseStore,
    generation: str,
    run_id: str,
    entries: Sequence[tuple[str, str, str, int]],
) -> None:
    """Ledger rows: (input_id, state, reason, shard)."""
    version = new_version()
    recorded = now_utc()
    store.insert(
        LEDGER_TABLE,
        [(generation, i, s, r, sh, run_id, version, recorded) for i, s, r, sh in entries],
        LEDGER_COLUMNS,
    )


def add_changed(
    store: ClickHouseStore, names: dict[str, str], condition_ids: Sequence[str]
) -> None:
    store.insert(
        f"{names['db']}.{names['changed']}", [(c,) for c in condition_ids], ["condition_id"]
    )


def mark_unchanged(store: ClickHouseStore, names: dict[str, str], previous_generation: str) -> int:
    """Fill the generation's ``unchanged`` table; returns how many ids need not be asked again."""
    with store.session():
        store.run_file("missing/unchanged.sql", {**names, "previous": previous_generation})
        return int(store.query_file("missing/unchanged_count.sql", names)[0][0])


def build_missing(
    store: ClickHouseStore,
    names: dict[str, str],
    generation: str,
    run_id: str,
    shards: int,
    unchanged_reason: str = "",
) -> int:
    """Record invalid, already-resolved and unchanged ids and build the new missing table (not yet
    swapped in: ``publish_missing`` does that once the snapshot is pinned); returns the number of
    distinct ids that entered (what the ledger states must sum to)."""
    params = {
        **names,
        "generation": generation,
        "run_id": run_id,
        "shards": shards,
        "version": new_version(),  # one version for every state this build records
    }
    with store.session():
        distinct = int(store.query_file("missing/distinct_ids.sql", names)[0][0])
        store.ensure_room_for_ddl("building the new missing_condition_ids table")
        store.run_file("missing/build.sql", {**params, "unchanged_reason": unchanged_reason})
        for shard in range(shards):
            store.run_file("missing/pending.sql", {**params, "shard": shard})
    return distinct


def publish_missing(store: ClickHouseStore, names: dict[str, str], generation: str) -> None:
    """Swap the new generation's missing ids in, after its snapshot is pinned: whatever stops
    in between, the store's newest snapshot is never older than the ids the shards would read,
    so a run that did not finish always shows as a snapshot Dagster did not checkpoint."""
    with store.session():
        store.run_file("missing/swap.sql", names)
        store.run_file("missing/cleanup.sql", {**names, "generation": generation})


def record_snapshot(store: ClickHouseStore, snapshot: Snapshot) -> None:
    store.insert(
        "payout_backfill.snapshots",
        [
            (
                snapshot.generation,
                snapshot.block_number,
                snapshot.block_hash,
                snapshot.deployment,
                snapshot.has_indexing_errors,
                snapshot.shard_count,
                snapshot.input_rows,
                snapshot.distinct_ids,
                now_utc(),
            )
        ],
        [
            "generation",
            "block_number",
            "block_hash",
            "deployment",
            "has_indexing_errors",
            "shard_count",
            "input_rows",
            "distinct_ids",
            "created_at",
        ],
    )


def current_snapshot(store: ClickHouseStore) -> Snapshot | None:
    rows = store.query_file("missing/current_snapshot.sql")
    if not rows:
        return None
    g, block, block_hash, deployment, errors, shards, lines, distinct = rows[0]
    return Snapshot(
        g, int(block), block_hash, deployment, bool(errors), int(shards), int(lines), int(distinct)
    )


def state_counts(store: ClickHouseStore, generation: str) -> dict[str, int]:
    return {
        s: int(n) for s, n in store.query_file("missing/summary.sql", {"generation": generation})
    }


def shard_sizes(store: ClickHouseStore) -> dict[int, int]:
    return {int(s): int(n) for s, n in store.query_file("missing/shard_sizes.sql")}


# -- goldsky_payouts (one shard) --------------------------------------------------------------


def shard_id_count(store: ClickHouseStore, shard: int, generation: str) -> int:
    return int(
        store.query_file("shard/count_ids.sql", {"shard": shard, "generation": generation})[0][0]
    )


def iter_shard_ids(
    store: ClickHouseStore, shard: int, generation: str, chunk: int
) -> Iterator[list[str]]:
    """The shard's ids, read now (one engine session), handed out in chunks from a spool."""
    params = {"shard": shard, "generation": generation}
    chunks = store.spool_file("shard/read_ids.sql", params, chunk)
    return ([r[0] for r in rows] for rows in chunks)


def stage_rows(store: ClickHouseStore, rows: Sequence[Sequence[Any]]) -> None:
    store.insert(STAGING_TABLE, rows, STAGING_COLUMNS)


def drop_staged_run(store: ClickHouseStore, shard: int, run_id: str) -> None:
    store.run_file("shard/drop_run.sql", {"shard": shard, "run_id": run_id})


def drop_orphan_runs(store: ClickHouseStore, shard: int) -> int:
    """Drop what killed or failed runs of the shard left behind (call under the shard lock)."""
    with store.session():
        orphans = [r[0] for r in store.query_file("shard/orphan_runs.sql", {"shard": shard})]
        for run_id in orphans:
            drop_staged_run(store, shard, run_id)
    return len(orphans)


def drop_superseded_runs(store: ClickHouseStore, shard: int, ingested_run_id: str) -> int:
    """After a run's rows are ingested, staging partitions of older published runs go."""
    with store.session():
        runs = [
            r[0]
            for r in store.query_file(
                "ingest/superseded_runs.sql", {"shard": shard, "run_id": ingested_run_id}
            )
        ]
        for run_id in runs:
            drop_staged_run(store, shard, run_id)
    return len(runs)


def run_slices(store: ClickHouseStore, shard: int, run_id: str) -> list[dict[str, Any]]:
    """The query parameters of each slice of one shard run: ``shard``, ``run_id``, ``lo``,
    ``hi`` (see sql/shard/slices.sql)."""
    return [
        {"shard": shard, "run_id": run_id, "lo": lo, "hi": hi}
        for lo, hi in store.query_file(
            "shard/slices.sql", {"shard": shard, "run_id": run_id, "ids": SLICE_IDS}
        )
    ]


def each_slice(store: ClickHouseStore, slices: Sequence[RunSlice]) -> Iterator[RunSlice]:
    """The slices in turn; between two, the embedded engine hands back the pages the last one
    freed, so they do not pile up in the heap either (a purge costs well under a millisecond)."""
    for index, run_slice in enumerate(slices):
        if index:
            store.release_memory()
        yield run_slice


def _run_in_slices(
    store: ClickHouseStore, name: str, shard: int, run_id: str, parameters: Mapping[str, Any]
) -> None:
    """Run ``sql/<name>`` once per slice of a shard run (call inside a session)."""
    for run_slice in each_slice(store, run_slices(store, shard, run_id)):
        store.run_file(name, {**run_slice, **parameters})


def publish_shard(store: ClickHouseStore, shard: int, run_id: str, generation: str) -> None:
    params = {"shard": shard, "run_id": run_id, "generation": generation}
    with store.session():
        _run_in_slices(
            store, "shard/publish.sql", shard, run_id, {**params, "version": new_version()}
        )
        store.run_file("shard/record_run.sql", params)


def fail_shard(
    store: ClickHouseStore, shard: int, run_id: str, generation: str, reason: str
) -> None:
    store.run_file(
        "shard/fail.sql",
        {
            "shard": shard,
            "run_id": run_id,
            "generation": generation,
            "reason": reason,
            "version": new_version(),
        },
    )


def shard_outcomes(store: ClickHouseStore, shard: int, run_id: str) -> dict[str, int]:
    return {
        o: int(n)
        for o, n in store.query_file("shard/outcomes.sql", {"shard": shard, "run_id": run_id})
    }


# -- resolutions_external_ingest (one shard) ---------------------------------------------------


def shard_run_to_ingest(store: ClickHouseStore, shard: int, run_id: str) -> tuple[str, str] | None:
    """The fetch to ingest: this Dagster run's own, when it fetched the shard (so two backfills
    running at once each ingest what they fetched), otherwise the newest published one."""
    rows = store.query_file("ingest/run_of_shard.sql", {"shard": shard, "run_id": run_id})
    rows = rows or store.query_file("ingest/latest_run.sql", {"shard": shard})
    return (rows[0][0], rows[0][1]) if rows else None


def ingest_shard(store: ClickHouseStore, shard: int, run_id: str) -> None:
    with store.session():
        _run_in_slices(store, "ingest/load_shard.sql", shard, run_id, {"version": new_version()})


def ingest_table_rows(store: ClickHouseStore) -> int:
    return int(store.query_file("ingest/table_rows.sql")[0][0])


# -- vw_resolutions_truth -----------------------------------------------------------------------


MERGE_ROUNDS = 20  # OPTIMIZE rounds at the most; each must shrink the part count


def merge_shard_writes(store: ClickHouseStore) -> tuple[int, int]:
    """Merge what the shard runs wrote (they do not merge) before whole-table reads, round by
    round while the part count shrinks (sql/views/merge_shard_writes.sql); returns the active
    parts before and after. Call it on a store opened with ``merges=False``."""
    before = parts = int(store.query_file("views/shard_write_parts.sql")[0][0])
    for _ in range(MERGE_ROUNDS):
        store.run_file("views/merge_shard_writes.sql")
        now = int(store.query_file("views/shard_write_parts.sql")[0][0])
        if now >= parts:
            break
        parts = now
    return before, parts


def truth_summary(store: ClickHouseStore) -> list[tuple[str, int, int]]:
    return [(s, int(n), int(k)) for s, n, k in store.query_file("views/truth_summary.sql")]
