"""One way to reach ClickHouse: clickhouse-connect over either backend.

``chdb:///abs/path`` is the embedded engine (real ClickHouse, in-process). It can be open in one
process at a time, so every use goes through :meth:`ClickHouseStore.session`, which holds a file
lock only for the duration of a short operation; parallel shard processes therefore share one
store. ``http(s)://user:pass@host:port/db`` is a server or cluster; no lock is needed there.
The SQL is the same on both.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from filelock import FileLock, Timeout

from payout_assets.redact import redact
from payout_assets.warehouse import heap
from payout_assets.warehouse.ddl import Target, maintenance
from payout_assets.warehouse.sql import statements

_RELEASE_MEMORY = statements("meta/release_memory.sql")[0]

# Session settings for the embedded engine only: its queries run inside the calling process, so
# every block it holds is that process's heap, and clickhouse-connect turns each block into Python
# tuples; smaller blocks bound that. A server keeps its defaults: its memory is not a shard's.
EMBEDDED_SETTINGS: dict[str, int] = {"max_block_size": 8192}

# Start-up options of the embedded engine (chdb), not query settings. Every engine open starts the
# MergeTree background executors afresh and chdb never stops the threads of the ones it closes, so
# executors that cannot do anything in an embedded store (moves between disks, fetches from
# replicas) get no threads.
EMBEDDED_ENGINE_OPTIONS: dict[str, int] = {
    "background_move_pool_size": 0,
    "background_fetches_pool_size": 0,
}
# What a store opened with ``merges=False`` adds: no merge threads at all. Background merges run
# in whichever process holds the engine, so a shard run would otherwise carry a merge of tables
# every shard writes; the view step merges what the shards wrote instead (``merge_shard_writes``).
NO_MERGES_OPTIONS: dict[str, int] = {"background_pool_size": 0}

# chdb's jemalloc reads this when chdb loads, on the first chdb:// connection; idle engine threads
# would otherwise each keep a thread cache. A value set by the user wins.
EMBEDDED_JEMALLOC_CONF = "tcache:false"

# Free space an embedded store's filesystem must have before DDL that writes a metadata file
# (CREATE TABLE, CREATE OR REPLACE VIEW, ALTER ... MODIFY SETTING). The engine writes such a file
# in place of the old one, and when the disk fills meanwhile it leaves it empty without an
# error: the store then no longer opens. Inserts and partition drops fail cleanly instead.
DDL_MIN_FREE_BYTES = 8 * 1024 * 1024


@cache
def _tune_for_embedded_engine() -> None:
    """Allocator settings for a process that will run the embedded engine, applied once, before
    the engine loads and before the process's worker threads start (see ``heap.py``)."""
    os.environ.setdefault("JE_MALLOC_CONF", EMBEDDED_JEMALLOC_CONF)
    heap.one_arena()


class StoreError(RuntimeError):
    """A ClickHouse problem, with any password already removed from the message."""


def _secrets_of(dsn: str) -> list[str]:
    parts = urlsplit(dsn)
    return [s for s in (parts.password,) if s]


class ClickHouseStore:
    """A ClickHouse database reached through clickhouse-connect, shareable between processes."""

    def __init__(
        self,
        dsn: str,
        lock_timeout_s: float = 900.0,
        merges: bool = True,
        cluster: str | None = None,
    ) -> None:
        """``merges=False``: this process's engine opens run no background merges
        (``NO_MERGES_OPTIONS``; embedded only, a server merges on its own). ``cluster``: the
        self-managed cluster the schema is created on (``warehouse.ddl``)."""
        scheme = urlsplit(dsn).scheme
        if scheme not in {"chdb", "http", "https"}:
            raise StoreError(
                f"CLICKHOUSE_DSN must start with chdb://, http:// or https://, got {redact(dsn)!r}"
            )
        self.dsn = dsn
        self.embedded = scheme == "chdb"
        self.ddl_target = Target(cluster)
        self.merges = merges
        self._lock_timeout_s = lock_timeout_s
        self._local_lock = threading.RLock()
        self._file_lock: FileLock | None = None
        if self.embedded:
            _tune_for_embedded_engine()
            path = Path(urlsplit(dsn).path)
            if not path.is_absolute():
                raise StoreError(
                    "an embedded store needs an absolute path: chdb:///abs/path, got "
                    f"{redact(dsn)!r}"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file_lock = FileLock(str(path) + ".lock", timeout=lock_timeout_s)
        self._depth = 0
        self._client: Client | None = None

    @property
    def display_dsn(self) -> str:
        return redact(self.dsn)

    def ensure_room_for_ddl(self, purpose: str) -> None:
        """Refuse DDL that writes table metadata when the embedded store's disk is (nearly)
        full (see ``DDL_MIN_FREE_BYTES``), so a full disk fails the step and leaves the store
        as it was. A server guards its own disks."""
        if not self.embedded:
            return
        path = Path(urlsplit(self.dsn).path)
        while not path.exists():
            path = path.parent
        stat = os.statvfs(path)
        free = stat.f_bavail * stat.f_frsize
        if free < DDL_MIN_FREE_BYTES:
            raise StoreError(
                f"{purpose} needs at least {DDL_MIN_FREE_BYTES // 2**20} MiB free next to the "
                f"embedded store {self.display_dsn}; its filesystem has {free / 2**20:.1f} MiB. "
                "Nothing was changed: free some space and run again."
            )

    def named_lock(self, name: str, timeout_s: float = -1) -> FileLock:
        """A host-wide lock scoped to this store (e.g. one per shard, so two runs of the same
        shard never overlap). Next to an embedded store; in the temp dir for a server."""
        if self.embedded:
            path = f"{urlsplit(self.dsn).path}.{name}.lock"
        else:
            digest = hashlib.sha256(redact(self.dsn).encode()).hexdigest()[:16]
            path = str(Path(tempfile.gettempdir()) / f"payout-backfill-{digest}-{name}.lock")
        return FileLock(path, timeout=timeout_s)

    @contextmanager
    def session(self) -> Iterator[Client]:
        """A client for a short operation. Re-entrant within one process (the outermost session
        opens and closes the engine); other processes wait for the file lock meanwhile."""
        with self._local_lock:
            if self._depth == 0:
                self._acquire()
            self._depth += 1
            try:
                assert self._client is not None
                yield self._client
            except ClickHouseError as exc:  # server and chdb errors alike: drop any secret
                raise StoreError(self._clean(str(exc))) from None
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._release()

    def _acquire(self) -> None:
        if self._file_lock is not None:
            try:
                self._file_lock.acquire()
            except Timeout:
                raise StoreError(
                    f"the embedded store {self.display_dsn} stayed locked by another process for "
                    f"{self._lock_timeout_s:.0f}s; is a long query running elsewhere?"
                ) from None
        try:
            self._client = clickhouse_connect.get_client(dsn=self.dsn, **self._client_options())
        except Exception as exc:
            if self._file_lock is not None:
                self._file_lock.release()
            raise StoreError(
                f"cannot connect to ClickHouse at {self.display_dsn}: {self._clean(str(exc))}"
            ) from None

    def _client_options(self) -> dict[str, Any]:
        if not self.embedded:
            return {}  # a server keeps its own settings
        options = (
            EMBEDDED_ENGINE_OPTIONS if self.merges else EMBEDDED_ENGINE_OPTIONS | NO_MERGES_OPTIONS
        )
        return {"settings": EMBEDDED_SETTINGS, "chdb_options": options}

    def release_memory(self) -> None:
        """Hand the embedded engine's freed pages back to the OS (sql/meta/release_memory.sql):
        before the engine closes, and between the slices of a long operation. A server manages
        its own memory, so nothing is sent to one; nor when no session is open."""
        if self.embedded and self._client is not None:
            with contextlib.suppress(ClickHouseError):
                self._client.command(_RELEASE_MEMORY)

    def _release(self) -> None:
        try:
            if self._client is not None:
                self.release_memory()
                self._client.close()
                if self.embedded:
                    heap.trim()  # what the session's Python side freed goes back too
        finally:
            self._client = None
            if self._file_lock is not None:
                self._file_lock.release()

    def _clean(self, message: str) -> str:
        return redact(message, _secrets_of(self.dsn))

    # -- conveniences: each opens a session unless one is already open -----------------------

    def run_file(self, name: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Run every statement of ``sql/<name>`` in order."""
        with self.session():
            for statement in statements(name):
                self.command(maintenance(statement, self.ddl_target), parameters)

    def command(self, statement: str, parameters: Mapping[str, Any] | None = None) -> None:
        with self.session() as client:
            client.command(statement, parameters=dict(parameters or {}))

    def query_rows(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[tuple]:
        with self.session() as client:
            return client.query(sql, parameters=dict(parameters or {})).result_rows

    def query_file(self, name: str, parameters: Mapping[str, Any] | None = None) -> list[tuple]:
        (statement,) = statements(name)
        return self.query_rows(statement, parameters)

    def spool_file(
        self, name: str, parameters: Mapping[str, Any] | None = None, chunk: int = 20_000
    ) -> Iterator[list[tuple]]:
        """The rows of ``sql/<name>``, read now in ONE short session, returned in chunks.

        The result is streamed block by block into a temporary file while the engine is held;
        the engine is released before this returns, and the chunks are read back from disk as
        the caller iterates. Python holds one chunk at a time whatever the result's size, and
        the number of engine sessions does not grow with it: each embedded engine open leaves
        a few threads and some memory behind inside chdb, so paging with one session per
        chunk made a shard's memory grow with its ids.
        """
        (statement,) = statements(name)
        spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _read_spool or on error
        try:
            pending: list[tuple] = []
            with (
                self.session() as client,
                client.query_row_block_stream(
                    statement, parameters=dict(parameters or {})
                ) as stream,
            ):
                for block in stream:  # an engine block (up to max_block_size rows) at a time
                    pending.extend(block)
                    while len(pending) >= chunk:
                        pickle.dump(pending[:chunk], spool, pickle.HIGHEST_PROTOCOL)
                        del pending[:chunk]
            if pending:
                pickle.dump(pending, spool, pickle.HIGHEST_PROTOCOL)
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        return _read_spool(spool)

    def insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None:
        if not rows:
            return
        with self.session() as client:
            client.insert(table, list(rows), column_names=list(columns))

    def table_exists(self, table: str) -> bool:
        database, _, name = table.rpartition(".")
        rows = self.query_file("meta/table_exists.sql", {"db": database or "default", "name": name})
        return bool(rows[0][0])


def _read_spool(spool: IO[bytes]) -> Iterator[list[tuple]]:
    with spool:
        while True:
            try:
                yield pickle.load(spool)
            except EOFError:
                return
