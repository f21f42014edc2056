"""The schema is applied once per version, never on every step, on the real embedded engine.

Why: DDL that rewrites a table's metadata file (``ALTER ... MODIFY SETTING``, ``CREATE OR
REPLACE VIEW``) leaves the file empty when the disk fills during the write, and the store then
no longer opens. Every step calls ``ensure_schema``, so it must only read when the store is
current; the disk-full cases run on a real small filesystem (a tmpfs mounted for the test).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from payout_assets.defs import assets
from payout_assets.warehouse import schema, tables
from payout_assets.warehouse.sql import statements
from payout_assets.warehouse.store import ClickHouseStore, StoreError
from payout_assets_tests.conftest import Pipeline
from payout_standins.demo import seed_store
from payout_standins.goldsky import Simulator

pytestmark = pytest.mark.integration

SMALL_DISK_MB = 64
OLD_RELEASE_FILES = (
    "ddl/pipeline.sql",
    "ddl/polygon.sql",  # the truth view reads its table
    "views/ledger_latest.sql",
    "views/vw_resolutions_truth.sql",
)


def _metadata_files(store: ClickHouseStore) -> dict[str, tuple[int, int, bytes]]:
    """Every table, view and database definition file of the store: inode, mtime and text."""
    root = Path(store.dsn.removeprefix("chdb://"))
    files = {}
    for path in sorted(root.rglob("*.sql")):
        if path.is_file():
            stat = path.stat()
            files[str(path.relative_to(root))] = (stat.st_ino, stat.st_mtime_ns, path.read_bytes())
    assert files, f"no metadata files under {root}"
    return files


def _ddl_runs(store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records the statements the store runs (every DDL statement goes through command)."""
    ran: list[str] = []
    command = store.command

    def recording(statement: str, parameters: dict | None = None) -> None:
        ran.append(statement)
        command(statement, parameters)

    monkeypatch.setattr(store, "command", recording)
    return ran


def _old_release_store(store: ClickHouseStore) -> None:
    """The schema as the previous release left it: its DDL run directly, no version recorded."""
    for name in OLD_RELEASE_FILES:
        store.run_file(name)
    assert schema.recorded_version(store) is None


def _versions(store: ClickHouseStore) -> list[tuple[int, str]]:
    return [
        (int(v), str(d))
        for v, d in store.query_rows(f"SELECT version, digest FROM {schema.VERSION_TABLE}")
    ]


def test_ensure_schema_on_a_current_store_runs_no_ddl_and_rewrites_no_metadata(
    store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables.ensure_schema(store)
    before = _metadata_files(store)
    ran = _ddl_runs(store, monkeypatch)
    for _ in range(3):  # as every step does
        tables.ensure_schema(store)
    assert ran == []
    assert _metadata_files(store) == before


def test_a_store_an_older_release_made_is_migrated_once(
    store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _old_release_store(store)
    store.insert(
        "payout_backfill.missing_condition_ids",
        [(f"{i:064x}", 1, "old") for i in range(10)],
        ["condition_id", "shard", "generation"],
    )
    ran = _ddl_runs(store, monkeypatch)
    tables.ensure_schema(store)
    assert {s for name in OLD_RELEASE_FILES for s in statements(name)} <= set(ran)
    assert _versions(store) == [(schema.SCHEMA_VERSION, schema.schema_digest())]
    migrated = _metadata_files(store)
    ran.clear()
    tables.ensure_schema(store)
    assert ran == [] and _metadata_files(store) == migrated
    assert store.query_rows("SELECT count() FROM payout_backfill.missing_condition_ids") == [(10,)]


def test_a_new_version_is_applied_once_and_a_newer_store_is_refused(
    store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables.ensure_schema(store)
    monkeypatch.setattr(schema, "SCHEMA_VERSION", schema.SCHEMA_VERSION + 1)
    assert schema.migrate(store) is True
    assert schema.migrate(store) is False
    assert schema.recorded_version(store) == (schema.SCHEMA_VERSION, schema.schema_digest())
    monkeypatch.setattr(schema, "SCHEMA_VERSION", schema.SCHEMA_VERSION - 1)
    with pytest.raises(schema.SchemaTooNewError, match="newer than this release"):
        tables.ensure_schema(store)


def _outdated_parts(store: ClickHouseStore) -> int:
    return store.query_rows(
        "SELECT count() FROM system.parts WHERE database = 'payout_backfill' AND NOT active"
    )[0][0]


def test_an_embedded_store_deletes_the_parts_merges_made_outdated_when_a_backfill_starts(
    store: ClickHouseStore,
) -> None:
    """Outdated parts are deleted only by the engine's cleanup task. By default it first runs
    30 to 40 seconds after the engine opens, longer than the pipeline's sessions last, so they
    piled up and every open loaded them; the schema gives the embedded store's tables a cleanup
    that runs a second in, and a backfill's snapshot waits for it."""
    tables.ensure_schema(store)
    for n in range(3):  # three parts, merged into one: the three are now outdated
        store.insert(
            "payout_backfill.missing_condition_ids",
            [(f"{n:064x}", 0, "g")],
            ["condition_id", "shard", "generation"],
        )
    store.command("OPTIMIZE TABLE payout_backfill.missing_condition_ids FINAL")
    assert _outdated_parts(store) == 3
    assert schema.delete_outdated_parts(store) == 3
    assert _outdated_parts(store) == 0
    assert store.query_rows("SELECT count() FROM payout_backfill.missing_condition_ids") == [(3,)]
    assert schema.delete_outdated_parts(store) == 0  # nothing to wait for


# -- a full disk, for real ----------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs, unmounted after the test; skipped where mounting is not permitted."""
    mount = tmp_path / "small_disk"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK_MB}m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mount)], check=True)


def _fill(disk: Path) -> Path:
    """Write a file until the filesystem is full; returns it (delete it to free the space)."""
    filler = disk / "filler"
    chunk = b"\0" * (1 << 16)
    with filler.open("wb") as out:
        for _ in range(SMALL_DISK_MB * 16 + 16):  # more 64 KiB chunks than the disk holds
            try:
                out.write(chunk)
                out.flush()
            except OSError:
                break
        else:
            raise AssertionError("the small disk never filled")
    stat = os.statvfs(disk)
    assert stat.f_bavail * stat.f_frsize < 1 << 16, "the disk should be full"
    return filler


def _truth(store: ClickHouseStore) -> list[tuple]:
    return store.query_rows(
        "SELECT condition_id, payout_numerators, payout_denominator "
        "FROM cascadian_clean.vw_resolutions_truth ORDER BY condition_id"
    )


def test_a_step_that_fills_the_disk_fails_and_the_store_still_opens(
    small_disk: Path, sim: Simulator, instance: dg.DagsterInstance
) -> None:
    """A good (one-shard) backfill; the disk fills during the next run's snapshot step, which fails; once
    space is freed the store opens, what was ingested reads, and the next snapshot succeeds."""
    store = ClickHouseStore(f"chdb://{small_disk / 'clickhouse'}")
    seed_store(store, sim.universe, 1_000)
    pipeline = Pipeline(store=store, endpoint=sim.url, instance=instance)
    pipeline.snapshot()  # one shard of the backfill is enough to have data to lose
    assert pipeline.shard("shard-00").success
    pipeline.view()
    truth = _truth(store)
    ingested = store.query_rows("SELECT count() FROM default.resolutions_external_ingest FINAL")
    assert truth and ingested[0][0] > 0

    filler = _fill(small_disk)
    result = pipeline.materialize([assets.missing_condition_ids])
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.error.to_string()
    assert "not enough space" in error.lower() or "free some space" in error, error
    filler.unlink()

    assert _truth(store) == truth
    assert (
        store.query_rows("SELECT count() FROM default.resolutions_external_ingest FINAL")
        == ingested
    )
    assert pipeline.snapshot().success


def test_a_migration_on_a_full_disk_is_refused_and_changes_nothing(small_disk: Path) -> None:
    store = ClickHouseStore(f"chdb://{small_disk / 'clickhouse'}")
    tables.create_source_tables(store)
    _old_release_store(store)
    store.insert(
        "payout_backfill.missing_condition_ids",
        [(f"{i:064x}", 1, "old") for i in range(10)],
        ["condition_id", "shard", "generation"],
    )
    before = _metadata_files(store)

    filler = _fill(small_disk)
    with pytest.raises(StoreError, match="Nothing was changed: free some space"):
        tables.ensure_schema(store)
    filler.unlink()

    assert _metadata_files(store) == before
    assert store.query_rows("SELECT count() FROM payout_backfill.missing_condition_ids") == [(10,)]
    tables.ensure_schema(store)  # with room again, the migration goes through
    assert schema.recorded_version(store) == (schema.SCHEMA_VERSION, schema.schema_digest())
