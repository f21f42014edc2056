"""The embedded store's contract that the shard processes rely on, on the real chdb engine.

Why: each engine open leaves threads and memory behind inside chdb, so a shard reads its ids and
its check rows through ``spool_file``: one short session whatever the size of the result, with
the engine (and the file lock other processes wait on) released before the rows are used.
"""

from __future__ import annotations

import os
import time

import pytest
from filelock import FileLock, Timeout

from payout_assets.warehouse import heap, tables
from payout_assets.warehouse.store import ClickHouseStore, StoreError

pytestmark = pytest.mark.integration

GENERATION = "spool-test"


def _opens(store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the store's engine opens (one per outermost session)."""
    opened: list[int] = []
    acquire = store._acquire

    def counting() -> None:
        opened.append(1)
        acquire()

    monkeypatch.setattr(store, "_acquire", counting)
    return opened


def _lock_is_free(store: ClickHouseStore) -> bool:
    other = FileLock(
        str(store._file_lock.lock_file), timeout=0
    )  # a second handle, as another process has
    try:
        other.acquire()
    except Timeout:
        return False
    other.release()
    return True


@pytest.fixture
def shard_ids(store: ClickHouseStore) -> list[str]:
    tables.ensure_schema(store)
    ids = sorted(f"{i:064x}" for i in range(2_345))
    store.insert(
        "payout_backfill.missing_condition_ids",
        [(cid, 3, GENERATION) for cid in ids],
        ["condition_id", "shard", "generation"],
    )
    return ids


def test_spool_reads_everything_in_one_session_and_releases_the_engine_first(
    store: ClickHouseStore, shard_ids: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    opens = _opens(store, monkeypatch)
    chunks = store.spool_file("shard/read_ids.sql", {"shard": 3, "generation": GENERATION}, 500)
    assert len(opens) == 1
    assert _lock_is_free(store), "the engine must be released before the rows are handed out"
    sizes = []
    rows = []
    for chunk in chunks:
        sizes.append(len(chunk))
        rows += [r[0] for r in chunk]
    assert rows == shard_ids
    assert sizes == [500] * 4 + [345]
    assert len(opens) == 1


def test_spool_inside_a_held_session_reuses_it(
    store: ClickHouseStore, shard_ids: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    opens = _opens(store, monkeypatch)
    with store.session():
        count = tables.shard_id_count(store, 3, GENERATION)
        ids = [cid for chunk in tables.iter_shard_ids(store, 3, GENERATION, 1_000) for cid in chunk]
    assert (count, ids) == (len(shard_ids), shard_ids)
    assert len(opens) == 1


def test_a_failing_spooled_query_raises_store_error_and_releases_the_lock(
    store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pipeline's tables do not exist yet, so the shard query fails inside the engine.
    with pytest.raises(StoreError, match="payout_backfill"):
        store.spool_file("shard/read_ids.sql", {"shard": 0, "generation": GENERATION})
    assert _lock_is_free(store)


BLOCK_SETTINGS = (
    "min_compress_block_size = 16384",
    "max_compress_block_size = 65536",
    "merge_max_block_size = 2048",
)
SHARD_TABLES = (
    "payout_backfill.missing_condition_ids",
    "payout_backfill.goldsky_payouts",
    "payout_backfill.id_ledger",
    "default.resolutions_external_ingest",
)


def test_a_store_made_before_the_block_settings_gets_them(store: ClickHouseStore) -> None:
    """The small compression blocks bound what a shard's engine holds per column (see
    sql/ddl/pipeline.sql); a store whose tables were created without them gets them too."""
    tables.ensure_schema(store)
    with store.session() as client:
        client.command("DROP TABLE payout_backfill.schema_version")  # no version recorded then
        for table in SHARD_TABLES:  # the tables as an older release created them
            client.command(
                f"ALTER TABLE {table} RESET SETTING "
                "min_compress_block_size, max_compress_block_size, merge_max_block_size"
            )
            ((ddl,),) = client.query(f"SHOW CREATE TABLE {table}").result_rows
            assert "max_compress_block_size" not in ddl
    tables.ensure_schema(store)
    for table in SHARD_TABLES:
        database, name = table.split(".")
        ((ddl,),) = store.query_rows(
            "SELECT create_table_query FROM system.tables WHERE database = {d:String} "
            "AND name = {n:String}",
            {"d": database, "n": name},
        )
        for setting in BLOCK_SETTINGS:
            assert setting in ddl, (table, ddl)


def _heap_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no RssAnon in /proc/self/status")


def test_trim_hands_freed_heap_back_to_the_os() -> None:
    """What a session frees stays in the process unless trimmed (see write/heap.py)."""
    if heap._glibc() is None:
        pytest.skip("not glibc: trim does nothing here")
    held = [bytearray(1024) for _ in range(40_000)]  # ~42 MB from malloc (over pymalloc's 512 B)
    pinned = bytearray(1024)  # allocated after them: the heap's top cannot shrink past it
    del held
    before = _heap_mb()
    heap.trim()
    assert before - _heap_mb() > 20, "malloc_trim returned less than half of ~42 MB freed"
    assert len(pinned) == 1024


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_engine_opens_leave_no_move_or_fetch_threads(store: ClickHouseStore) -> None:
    """Every engine open leaves its background executors' threads behind (see
    EMBEDDED_ENGINE_OPTIONS); only the merge and cleanup executors get any."""
    tables.ensure_schema(store)  # MergeTree tables: their executors start on every open
    ((merges, cleanup),) = store.query_rows(  # both scale with the cores of the machine
        "SELECT toUInt64(anyIf(value, name = 'background_pool_size')), "
        "toUInt64(anyIf(value, name = 'background_common_pool_size')) FROM system.server_settings"
    )
    before, opens = _threads(), 6
    for _ in range(opens):
        store.query_rows("SELECT 1")
    left = (_threads() - before) / opens
    assert left < merges + cleanup + 1, (
        f"{left:.1f} threads left behind per engine open; merges {merges}, cleanup {cleanup}"
    )


_PARTS_SQL = (
    "SELECT count() FROM system.parts WHERE active AND database = 'payout_backfill' "
    "AND table = 'missing_condition_ids'"
)


def _write_six_parts(store: ClickHouseStore) -> None:
    with store.session() as client:
        for part in range(6):
            client.insert(
                "payout_backfill.missing_condition_ids",
                [(f"{part:02x}{i:062x}", 0, GENERATION) for i in range(100)],
                column_names=["condition_id", "shard", "generation"],
            )


def _wait_for_merges(store: ClickHouseStore) -> None:
    with store.session() as client:
        deadline = time.monotonic() + 60
        while (parts := client.query(_PARTS_SQL).result_rows[0][0]) > 1:
            assert time.monotonic() < deadline, f"{parts} parts still unmerged after 60 s"
            time.sleep(0.2)


def test_background_merges_still_run(store: ClickHouseStore) -> None:
    """The merge executor keeps its threads: parts written one by one are merged in the
    background, without an OPTIMIZE."""
    tables.ensure_schema(store)
    _write_six_parts(store)
    _wait_for_merges(store)


def test_a_shard_store_leaves_merges_to_the_next_merging_store(store: ClickHouseStore) -> None:
    """``merges=False`` (the per-shard steps): the engine runs no merge while the shard holds
    it, so no merge's memory lands in a shard process; the next store opened with background
    merges (the snapshot run's, say) merges what it wrote. The view step merges with OPTIMIZE
    instead (``test_the_view_step_merges_what_shard_stores_left``)."""
    tables.ensure_schema(store)
    shard_store = ClickHouseStore(store.dsn, merges=False)
    _write_six_parts(shard_store)
    with shard_store.session() as client:
        pool = client.query(
            "SELECT value FROM system.server_settings WHERE name = 'background_pool_size'"
        ).result_rows[0][0]
        time.sleep(3)  # a merging engine merges six small parts well within this
        parts = client.query(_PARTS_SQL).result_rows[0][0]
    assert (pool, parts) == ("0", 6)
    _wait_for_merges(store)


def test_the_view_step_merges_what_shard_stores_left(store: ClickHouseStore) -> None:
    """``merge_shard_writes`` (the view step, no background merges) brings the parts shard runs
    left in the ingest table down to one, so its whole-table reads do not go part by part."""
    tables.ensure_schema(store)
    shard_store = ClickHouseStore(store.dsn, merges=False)
    with shard_store.session() as client:
        for part in range(6):
            client.command(
                "INSERT INTO default.resolutions_external_ingest (condition_id, version) "
                f"SELECT lower(hex(sipHash128(number))), {part} FROM numbers({part * 50}, 50)"
            )
    view_store = ClickHouseStore(store.dsn, merges=False)
    with view_store.session():
        assert tables.merge_shard_writes(view_store) == (6, 1)
