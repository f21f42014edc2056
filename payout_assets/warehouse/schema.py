"""The pipeline's schema, applied once per version instead of on every step.

Why: every step used to re-run the DDL, and two kinds of its statements rewrite a table's
metadata file each time they run (``ALTER ... MODIFY SETTING``, ``CREATE OR REPLACE VIEW``). When
the disk fills during that rewrite, the embedded engine leaves the file empty and the store no
longer opens ("Empty query" in the metadata file): everything ingested before is unreadable. So
the store records the schema version it holds (``payout_backfill.schema_version``); a step that
finds it current only reads that row, and the DDL runs when the version or the schema files
change, once, after checking that the disk has room for it.
"""

from __future__ import annotations

import hashlib
import time

from payout_assets.warehouse.ddl import Target, created_table, render
from payout_assets.warehouse.sql import load_sql, statements
from payout_assets.warehouse.store import ClickHouseStore, StoreError

# Raise with every change of the schema files; a store that records a higher version was
# migrated by a newer release, and this code does not know its tables.
SCHEMA_VERSION = 2
# Applied in order, as a whole, whenever the store's recorded version or digest differs. Every
# statement in them must stay idempotent (IF NOT EXISTS, MODIFY SETTING, OR REPLACE): a store an
# older release made runs them over tables that already exist.
SCHEMA_FILES = (
    "ddl/pipeline.sql",
    "ddl/polygon.sql",
    "views/ledger_latest.sql",
    "views/vw_resolutions_truth.sql",
    "views/source_disagreements.sql",
    "views/ledger_resolved_by.sql",
)
VERSION_TABLE = "payout_backfill.schema_version"
EMBEDDED_FILE = "schema/embedded_table_settings.sql"  # per table, for the embedded engine only
CLEANUP_WAIT_S = 3.0  # the cleanup first runs a second after the engine opens (EMBEDDED_FILE)


class SchemaTooNewError(StoreError):
    """The store was migrated by a newer release of the pipeline."""


def schema_digest() -> str:
    """What the store records with the version: an edit of a schema file without a version bump
    still reaches existing stores (once)."""
    digest = hashlib.sha256()
    for name in (*SCHEMA_FILES, EMBEDDED_FILE):
        digest.update(name.encode() + b"\0" + load_sql(name).encode() + b"\0")
    return digest.hexdigest()


def schema_statements(target: Target, embedded: bool = False) -> list[str]:
    """Every statement of the schema, rendered for ``target`` (one server, Cloud or a cluster),
    the version table's last (the version is recorded after them); for the ``embedded`` engine,
    each table then gets the settings of ``EMBEDDED_FILE``."""
    names = (*SCHEMA_FILES, "schema/create_version_table.sql")
    created = [s for name in names for s in statements(name)]
    if embedded:
        (settings,) = statements(EMBEDDED_FILE)
        created += [
            settings.format(table=table) for table in filter(None, map(created_table, created))
        ]
    return [rendered for s in created for rendered in render(s, target)]


def recorded_version(store: ClickHouseStore) -> tuple[int, str] | None:
    """The (version, digest) the store was last brought to; None for a store an older release
    made (no version table) or a new one."""
    with store.session():
        if not store.table_exists(VERSION_TABLE):
            return None
        rows = store.query_file("schema/current_version.sql")
    return (int(rows[0][0]), str(rows[0][1])) if rows else None


def migrate(store: ClickHouseStore) -> bool:
    """Bring the store's schema to this release's version; returns whether any DDL ran.

    Reads one row when the store is current. Otherwise, in one engine session (other processes
    wait for the store meanwhile), checks the disk has room for the metadata files the DDL
    writes, applies the schema files and records the version last: a migration cut short is
    applied again by the next step.
    """
    wanted = (SCHEMA_VERSION, schema_digest())
    with store.session():
        current = recorded_version(store)
        if current == wanted:
            return False
        if current is not None and current[0] > SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"the store {store.display_dsn} holds schema version {current[0]}, newer than this "
                f"release's {SCHEMA_VERSION}: run the payout-backfill release that migrated it"
            )
        store.ensure_room_for_ddl("the schema migration")
        for statement in schema_statements(store.ddl_target, store.embedded):
            store.command(statement)
        store.run_file("schema/record_version.sql", {"version": wanted[0], "digest": wanted[1]})
    return True


def delete_outdated_parts(store: ClickHouseStore) -> int:
    """Keep an embedded store's session open until its cleanup has deleted the parts earlier
    merges left outdated (at most ``CLEANUP_WAIT_S``); returns how many it deleted.

    Called as a backfill starts: the last backfill's view step merged what its shards wrote,
    and no session since may have lasted the second the cleanup needs, while every engine open
    loads every outdated part. A fresh store, or a server, has nothing to wait for."""
    if not store.embedded:
        return 0
    with store.session():
        found = left = _outdated_parts(store)
        deadline = time.monotonic() + CLEANUP_WAIT_S
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = _outdated_parts(store)
    return found - left


def _outdated_parts(store: ClickHouseStore) -> int:
    return int(store.query_file("meta/outdated_parts.sql")[0][0])
