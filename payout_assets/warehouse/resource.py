"""ClickHouse as a Dagster resource (clickhouse-connect; embedded chdb or a server)."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import Field

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

    def store(self, merges: bool = True) -> ClickHouseStore:
        """``merges=False`` for the per-shard steps: their processes then never run a merge of
        the shared tables, which would put the merge's memory in a shard (see
        ``NO_MERGES_OPTIONS``); the view step merges what the shards wrote."""
        return ClickHouseStore(self.dsn, lock_timeout_s=self.lock_timeout_s, merges=merges)

    @contextmanager
    def held(self, merges: bool = True) -> Iterator[ClickHouseStore]:
        """A store whose engine stays open for the whole block: for short steps that run many
        statements (checks, the ingest, the view), so the embedded engine opens once, not per
        statement. Not for long fetch loops, which must let other shard processes in."""
        store = self.store(merges)
        with store.session():
            yield store
