"""Per-shard exclusivity that holds across hosts: a PostgreSQL session-level advisory lock.

On one machine a shard's lock is a file next to the store (``ClickHouseStore.named_lock``). Runs
on several hosts share no file system, but they share the instance's PostgreSQL
(``DAGSTER_PG_URL``): a session-level advisory lock there is held by one connection, and
PostgreSQL releases it when that connection ends, so a run killed on any host (its socket
closed by the kernel) never leaves its shard locked, as a lock file's ``flock`` never does.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

from filelock import Timeout

from payout_assets.redact import redact

if TYPE_CHECKING:
    from psycopg2.extensions import connection

POLL_S = 0.5


def lock_key(scope: str, name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name`` within ``scope`` (the store)."""
    digest = hashlib.sha256(f"payout-backfill\0{scope}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AdvisoryLock:
    """``acquire``/``release`` as filelock's: ``acquire(timeout=0)`` raises ``Timeout`` when
    another session holds the lock; ``acquire()`` waits for it."""

    def __init__(self, url: str, scope: str, name: str, holder: str = "") -> None:
        """``holder`` (e.g. a pid and host) is shown to whoever finds the lock taken."""
        self.url = url
        self.name = name
        self.key = lock_key(scope, name)
        self.application_name = f"payout-backfill {name} {holder}".strip()[:63]
        self._conn: connection | None = None

    def acquire(self, timeout: float = -1) -> None:
        import psycopg2  # dagster-postgres's driver

        conn = psycopg2.connect(self.url, application_name=self.application_name)
        conn.autocommit = True
        deadline = None if timeout < 0 else time.monotonic() + timeout
        try:
            with conn.cursor() as cursor:
                while True:
                    cursor.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
                    if cursor.fetchone()[0]:
                        break
                    if deadline is not None and time.monotonic() >= deadline:
                        raise Timeout(f"{self.name} on {redact(self.url)}")
                    time.sleep(POLL_S)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def holder(self) -> tuple[str, float] | None:
        """The session holding the lock: its application name and when it connected."""
        import psycopg2

        unsigned = self.key & 0xFFFF_FFFF_FFFF_FFFF
        conn = psycopg2.connect(self.url)
        try:
            with conn.cursor() as cursor:
                cursor.execute(
                    "SELECT a.application_name, extract(epoch FROM a.backend_start) "
                    "FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                    "AND l.classid = %s AND l.objid = %s",
                    (unsigned >> 32, unsigned & 0xFFFF_FFFF),
                )
                row = cursor.fetchone()
        finally:
            conn.close()
        return (str(row[0]), float(row[1])) if row else None

    def release(self) -> None:
        """Closing the session releases its advisory locks."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
