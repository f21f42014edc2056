"""Resource bindings (read from the environment, see the README) and the executor."""

import os

import dagster as dg

from payout_assets.settings import (
    DEFAULT_GOLDSKY_ENDPOINT,
    DEFAULT_MAX_RPS,
    clickhouse_cluster,
    default_clickhouse_dsn,
    env_or_default,
)
from payout_assets.sources.goldsky.resource import GoldskyResource
from payout_assets.sources.ids import IdSourceResource
from payout_assets.sources.polygon.events import CTF_ADDRESS, CTF_START_BLOCK
from payout_assets.sources.polygon.resource import (
    DEFAULT_RANGE_BLOCKS,
    DEFAULT_RPC_URL,
    PolygonResource,
)
from payout_assets.sources.polygon.rpc import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_FINALITY_DEPTH,
    DEFAULT_MAX_RANGE,
)
from payout_assets.warehouse.resource import ClickHouseResource


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        return float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def _secret(name: str) -> dg.EnvVar | None:
    """A secret setting as Dagster shows it: the variable's name, never its value."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def polygon_resource() -> PolygonResource:
    """The chain source as configured by the environment (the CLI resolves it the same way)."""
    return PolygonResource(
        rpc_url=env_or_default("POLYGON_RPC_URL", DEFAULT_RPC_URL),
        ctf_address=os.environ.get("POLYGON_CTF_ADDRESS") or CTF_ADDRESS,
        start_block=int(_number("POLYGON_START_BLOCK", CTF_START_BLOCK)),
        max_rps=_number("POLYGON_MAX_RPS", DEFAULT_MAX_RPS),
        max_range=int(_number("POLYGON_MAX_RANGE", DEFAULT_MAX_RANGE)),
        batch_size=int(_number("POLYGON_BATCH_SIZE", DEFAULT_BATCH_SIZE)),
        range_blocks=int(_number("POLYGON_RANGE_BLOCKS", DEFAULT_RANGE_BLOCKS)),
        finality_depth=int(_number("POLYGON_FINALITY_DEPTH", DEFAULT_FINALITY_DEPTH)),
        timeout_s=_number("POLYGON_TIMEOUT_S", 30.0),
        max_attempts=int(_number("POLYGON_MAX_ATTEMPTS", 8)),
        max_retry_s=_number("POLYGON_MAX_RETRY_S", 300.0),
        backoff_initial_s=_number("POLYGON_BACKOFF_S", 0.5),
        redis_url=_secret("PAYOUT_REDIS_URL"),
    )


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        # One process per run: a shard's steps (fetch, checks, ingest) are short and sequential,
        # and a process per step would pay Dagster's start-up cost four times per shard.
        executor=dg.in_process_executor,
        resources={
            "clickhouse": ClickHouseResource(
                dsn=env_or_default("CLICKHOUSE_DSN", default_clickhouse_dsn()),
                cluster=clickhouse_cluster(),
                lock_url=_secret("DAGSTER_PG_URL"),
            ),
            "goldsky": GoldskyResource(
                endpoint=env_or_default("GOLDSKY_ENDPOINT", DEFAULT_GOLDSKY_ENDPOINT),
                dialect=os.environ.get("GOLDSKY_DIALECT", "pnl"),
                max_rps=_number("GOLDSKY_MAX_RPS", DEFAULT_MAX_RPS),
                concurrency=int(_number("GOLDSKY_CONCURRENCY", 8)),
                timeout_s=_number("GOLDSKY_TIMEOUT_S", 30.0),
                max_attempts=int(_number("GOLDSKY_MAX_ATTEMPTS", 8)),
                max_retry_s=_number("GOLDSKY_MAX_RETRY_S", 300.0),
                backoff_initial_s=_number("GOLDSKY_BACKOFF_S", 0.5),
                api_key=_secret("GOLDSKY_API_KEY"),
                extra_headers=_secret("GOLDSKY_HEADERS"),
                redis_url=_secret("PAYOUT_REDIS_URL"),
            ),
            "polygon": polygon_resource(),
            "id_source": IdSourceResource(ids_file=os.environ.get("PAYOUT_IDS_FILE") or None),
        },
    )
