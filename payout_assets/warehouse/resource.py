"""ClickHouse as a Dagster resource (clickhouse-connect; embedded chdb or a server)."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from filelock import FileLock
from pydantic import Field

from payout_assets.redact import redact
from payout_assets.warehouse.locks import AdvisoryLock
from payout_assets.warehouse.store import ClickHouseStore


class ClickHouseResource(dg.ConfigurableResource):
    """Where every asset of this project lives.

    ``chdb:///abs/path`` is the embedded engine (default: ``$DAGSTER_HOME/clickhouse``);
    ``http(s)://user:password@host:port/db`` a server or cluster. The password never appears in
    logs, metadata or errors.
    """

    dsn: str = Field(
        description="CLICKHOUSE_DSN: chdb:///abs/path or http(s)://user:pass@host:port/db"
    )
    lock_timeout_s: float = Field(
        default=900.0, description="How long a process waits for the embedded store's file lock."
    )

    cluster: str | None = Field(
        default=None,
        description=(
            "CLICKHOUSE_CLUSTER: a self-managed cluster's name; the schema is then created ON "
            "CLUSTER with Replicated engines and Distributed tables (payout_assets/warehouse/ddl.py)."
        ),
    )
    lock_url: str | None = Field(
        default=None,
        description=(
            "DAGSTER_PG_URL: with the instance on PostgreSQL, a shard's lock is an advisory lock "
            "there, held across hosts (unset: a lock file next to the store)."
        ),
    )

    def shard_lock(self, store: ClickHouseStore, name: str) -> AdvisoryLock | FileLock:
        """The lock that keeps two runs of one shard from overlapping, wherever they run."""
        if self.lock_url:
            return AdvisoryLock(self.lock_url, redact(self.dsn), name)
        return store.named_lock(name)

    def store(self, merges: bool = True) -> ClickHouseStore:
        """``merges=False`` for the per-shard steps: their processes then never run a merge of
        the shared tables, which would put the merge's memory in a shard (see
        ``NO_MERGES_OPTIONS``); the view step merges what the shards wrote."""
        return ClickHouseStore(
            self.dsn, lock_timeout_s=self.lock_timeout_s, merges=merges, cluster=self.cluster
        )

    @contextmanager
    def held(self, merges: bool = True) -> Iterator[ClickHouseStore]:
        """A store whose engine stays open for the whole block: for short steps that run many
        statements (checks, the ingest, the view), so the embedded engine opens once, not per
        statement. Not for long fetch loops, which must let other shard processes in."""
        store = self.store(merges)
        with store.session():
            yield store
