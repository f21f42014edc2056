"""ClickHouse, as the backfill will use it: reachable, writable, the source tables' columns, the state a run resumes from, the id universe."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace

from clickhouse_connect.driver.exceptions import ClickHouseError

from payout_assets.preflight.result import CheckResult, Status, failed, passed, warned
from payout_assets.warehouse import tables
from payout_assets.warehouse.sql import load_sql, sql_dir
from payout_assets.warehouse.store import ClickHouseStore, StoreError

#: Columns the pipeline reads from each source table, with the type families that work
#: (wrappers such as Nullable/LowCardinality are allowed around them).
SOURCE_COLUMNS: dict[str, dict[str, str]] = {
    tables.SOURCE_TABLE: {
        "condition_id_norm": r"(Fixed)?String",
        "payout_numerators": r"Array\((Nullable\()?U?Int\d+",
        "payout_denominator": r"U?Int\d+",
        "winning_index": r"U?Int\d+",
        "resolved_at": r"DateTime",
    },
    "default.trades_raw": {"condition_id": r"(Fixed)?String"},
}


def _store_fix(store: ClickHouseStore, message: str) -> str:
    if "locked by another process" in message:
        return (
            "another process holds the embedded store (a long query or a stuck run); wait for it, "
            "or stop it, then run the preflight again"
        )
    if store.embedded:
        return (
            f"check CLICKHOUSE_DSN (now {store.display_dsn}): the embedded store's directory must "
            "be writable by this user and not be open in a process outside payout-backfill"
        )
    return (
        f"check CLICKHOUSE_DSN (now {store.display_dsn}): is the server running and reachable "
        "from this host, are the user and password right, does the database exist? "
        "(http(s)://user:password@host:port/db, or chdb:///abs/path for an embedded store)"
    )


def check_clickhouse_reachable(store: ClickHouseStore) -> CheckResult:
    name = "clickhouse reachable"
    started = time.monotonic()
    try:
        ((version, database),) = store.query_file("preflight/server_version.sql")
    except (StoreError, ClickHouseError, OSError) as exc:
        message = str(exc)
        if store.display_dsn not in message:
            message = f"{store.display_dsn}: {message}"
        return failed(name, message, _store_fix(store, str(exc)))
    kind = "embedded" if store.embedded else "server"
    return passed(
        name,
        f"ClickHouse {version} ({kind}) at {store.display_dsn}, database {database}, "
        f"{time.monotonic() - started:.2f}s",
    )


def check_clickhouse_writable(store: ClickHouseStore) -> CheckResult:
    """Create a scratch table, insert, read back, drop: what the pipeline does on every run."""
    name = "clickhouse writable"
    params = {"name": f"preflight_{uuid.uuid4().hex[:12]}"}
    step = "create database payout_backfill and a scratch table"
    try:
        with store.session():
            try:
                store.ensure_room_for_ddl("the preflight's scratch table")
                store.run_file("preflight/scratch_create.sql", params)
                step = "insert into the scratch table"
                store.insert(
                    f"payout_backfill.{params['name']}", [(1, "a"), (2, "b")], ["n", "note"]
                )
                step = "read the scratch table back"
                ((rows, total),) = store.query_file("preflight/scratch_count.sql", params)
            except (StoreError, ClickHouseError):
                with contextlib.suppress(StoreError, ClickHouseError):
                    store.run_file("preflight/scratch_drop.sql", params)
                raise
            step = "drop the scratch table"
            store.run_file("preflight/scratch_drop.sql", params)
    except (StoreError, ClickHouseError, OSError) as exc:
        return failed(
            name,
            f"could not {step}: {exc}",
            "the CLICKHOUSE_DSN user needs CREATE DATABASE, CREATE TABLE, INSERT, SELECT, ALTER "
            "and DROP on database payout_backfill and INSERT on default.resolutions_external_ingest; "
            "grant them or use a user that has them",
        )
    if (int(rows), int(total)) != (2, 3):
        return failed(
            name,
            f"inserted 2 rows into a scratch table but read back {rows}",
            "the server does not return what was just written; check the cluster's replication "
            "or insert settings (e.g. async_insert without wait)",
        )
    return passed(name, "created, filled, read and dropped a scratch table in payout_backfill")


def table_columns(store: ClickHouseStore, table: str) -> dict[str, str]:
    database, _, name = table.rpartition(".")
    rows = store.query_file(
        "preflight/table_columns.sql", {"db": database or "default", "table": name}
    )
    return {str(n): str(t) for n, t in rows}


def _unwrap(type_name: str) -> str:
    """``LowCardinality(Nullable(String))`` → ``String``: wrappers do not change what is read."""
    for wrapper in ("LowCardinality(", "Nullable("):
        while type_name.startswith(wrapper) and type_name.endswith(")"):
            type_name = type_name[len(wrapper) : -1]
    return type_name


def column_problems(columns: Mapping[str, str], expected: Mapping[str, str]) -> list[str]:
    out: list[str] = []
    for column, pattern in expected.items():
        actual = columns.get(column)
        if actual is None:
            out.append(f"no column `{column}`")
        elif not re.match(pattern, _unwrap(actual)):
            out.append(f"`{column}` is {actual}")
    return out


def check_source_table(store: ClickHouseStore, table: str) -> CheckResult:
    name = f"source table {table}"
    demo_ddl = sql_dir() / "demo" / "source_tables.sql"
    try:
        columns = table_columns(store, table)
    except (StoreError, ClickHouseError) as exc:
        return failed(name, str(exc), _store_fix(store, str(exc)))
    if not columns:
        return failed(
            name,
            f"{table} does not exist in {store.display_dsn}",
            f"create it with {demo_ddl} (the demo does this) or point CLICKHOUSE_DSN at the "
            "database that has it",
        )
    problems = column_problems(columns, SOURCE_COLUMNS[table])
    if problems:
        wanted = ", ".join(
            f"{c} ({p.replace(chr(92), '')})" for c, p in SOURCE_COLUMNS[table].items()
        )
        return failed(
            name,
            f"{table} has the wrong columns: {'; '.join(problems)}",
            f"the pipeline reads {wanted}; compare the table with {demo_ddl} and fix its schema "
            "(or point CLICKHOUSE_DSN at the database whose table has them)",
        )
    return passed(
        name,
        f"{len(columns)} columns; the {len(SOURCE_COLUMNS[table])} the pipeline reads are there, "
        "with usable types",
    )


def check_backfill_state(
    store: ClickHouseStore, shards: int | None
) -> tuple[CheckResult, tables.Snapshot | None]:
    """The pipeline's own tables: absent before the first run (fine), or a snapshot to resume."""
    name = "backfill state"
    try:
        existing = {r[0] for r in store.query_file("status/pipeline_tables.sql")}
        snapshot = tables.current_snapshot(store) if "snapshots" in existing else None
    except (StoreError, ClickHouseError) as exc:
        return failed(name, str(exc), _store_fix(store, str(exc))), None
    if snapshot is None:
        return passed(
            name, "no backfill yet: the pipeline's tables are created by the first run"
        ), None
    detail = (
        f"snapshot {snapshot.generation[:8]} pinned to block {snapshot.block_number:,}, "
        f"{snapshot.distinct_ids:,} distinct ids in {snapshot.shard_count} shards"
    )
    if shards is not None and snapshot.shard_count != shards:
        return (
            warned(
                name,
                f"{detail}, but PAYOUT_SHARDS is {shards}",
                f"an unfinished backfill cannot resume with a different shard count: set "
                f"PAYOUT_SHARDS={snapshot.shard_count}, or start over with `payout-backfill run --fresh`",
            ),
            snapshot,
        )
    return passed(name, detail), snapshot


def check_universe(store: ClickHouseStore, universe_sql: str) -> list[CheckResult]:
    """The universe query (sql/condition_universe.sql) runs, and how many ids it yields. When it
    fails, say whether ``default.trades_raw`` (what the shipped query reads) is the reason."""
    name = "id source (sql/condition_universe.sql)"
    sql = load_sql("preflight/universe_counts.sql").replace(
        "__UNIVERSE__", universe_sql.strip().rstrip(";")
    )
    started = time.monotonic()
    try:
        with store.session() as client:
            ((rows, valid, invalid),) = client.query(sql.strip().rstrip(";")).result_rows
    except (StoreError, ClickHouseError) as exc:
        message = str(exc)
        if "TIMEOUT_EXCEEDED" in message or "Timeout exceeded" in message:
            return [
                warned(
                    name,
                    "the query runs but counting its ids took over 20 s",
                    "nothing to fix for the backfill; expect missing_condition_ids to take a while",
                )
            ]
        results = [
            failed(
                name,
                f"the universe query failed: {message[:400]}",
                "fix sql/condition_universe.sql, or set PAYOUT_IDS_FILE to a file of ids",
            )
        ]
        table_check = check_source_table(store, "default.trades_raw")
        if table_check.status is not Status.PASS:
            results.append(
                replace(
                    table_check,
                    fix=table_check.fix
                    + "; or set PAYOUT_IDS_FILE (one id per line) / edit sql/condition_universe.sql",
                )
            )
        return results
    detail = (
        f"{int(rows):,} rows, {int(valid):,} distinct valid ids, {int(invalid):,} invalid rows "
        f"({time.monotonic() - started:.2f}s)"
    )
    if not valid:
        return [
            failed(
                name,
                detail,
                "the universe yields no condition id: fill default.trades_raw, fix "
                "sql/condition_universe.sql, or set PAYOUT_IDS_FILE",
            )
        ]
    return [passed(name, detail)]
