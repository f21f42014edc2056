"""A Polygon JSON-RPC provider and the contract to read, as a Dagster resource."""

import logging

import dagster as dg
from pydantic import Field

from payout_assets.sources.polygon.events import CTF_ADDRESS, CTF_START_BLOCK
from payout_assets.sources.polygon.rpc import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_FINALITY_DEPTH,
    DEFAULT_MAX_RANGE,
    RpcClient,
    RpcSettings,
)

DEFAULT_RPC_URL = "https://polygon-rpc.com"
DEFAULT_RANGE_BLOCKS = 1_000_000


class PolygonResource(dg.ConfigurableResource):
    """ConditionalTokens' ConditionResolution logs, read from a Polygon PoS provider."""

    rpc_url: str = Field(
        default=DEFAULT_RPC_URL, description="POLYGON_RPC_URL: the provider's JSON-RPC URL."
    )
    ctf_address: str = Field(
        default=CTF_ADDRESS, description="POLYGON_CTF_ADDRESS: the ConditionalTokens contract."
    )
    start_block: int = Field(
        default=CTF_START_BLOCK, description="POLYGON_START_BLOCK: the contract's first block."
    )
    max_rps: float = Field(
        default=10.0, description="POLYGON_MAX_RPS: calls/s for every scan process together."
    )
    max_range: int = Field(
        default=DEFAULT_MAX_RANGE,
        description="POLYGON_MAX_RANGE: most blocks per eth_getLogs (halved when refused).",
    )
    batch_size: int = Field(
        default=DEFAULT_BATCH_SIZE,
        description="POLYGON_BATCH_SIZE: calls per JSON-RPC batch (one POST).",
    )
    range_blocks: int = Field(
        default=DEFAULT_RANGE_BLOCKS,
        description="POLYGON_RANGE_BLOCKS: blocks per partition of the scan.",
    )
    finality_depth: int = Field(
        default=DEFAULT_FINALITY_DEPTH,
        description=(
            "POLYGON_FINALITY_DEPTH: for a node without the `finalized` tag, the scan stops this "
            "many blocks below the head (Polygon's deepest reorg on record: 157 blocks)."
        ),
    )
    timeout_s: float = Field(default=30.0, description="Per-request timeout.")
    max_attempts: int = Field(default=8, description="Attempts per request, first one included.")
    max_retry_s: float = Field(default=300.0, description="Total time a request may retry.")
    backoff_initial_s: float = Field(default=0.5, description="First backoff step (full jitter).")
    redis_url: str | None = Field(
        default=None,
        description="PAYOUT_REDIS_URL: the call-rate window lives in this Redis, for every host.",
    )

    def settings(self) -> RpcSettings:
        return RpcSettings(
            url=self.rpc_url,
            ctf_address=self.ctf_address,
            start_block=self.start_block,
            max_rps=self.max_rps,
            max_range=self.max_range,
            batch_size=self.batch_size,
            finality_depth=self.finality_depth,
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            max_retry_s=self.max_retry_s,
            backoff_initial_s=self.backoff_initial_s,
            redis_url=self.redis_url,
        )

    def client(self, log: logging.Logger | None = None) -> RpcClient:
        return RpcClient(self.settings(), log=log)
