"""The Goldsky subgraph endpoint as a Dagster resource."""

import json
import logging

import dagster as dg
from pydantic import Field

from payout_assets.sources.goldsky.client import MAX_FIRST, ClientSettings, Dialect, GoldskyClient


class GoldskyResource(dg.ConfigurableResource):
    """A graph-node GraphQL endpoint serving Polymarket ``Condition`` entities."""

    endpoint: str = Field(description="GOLDSKY_ENDPOINT: the subgraph's GraphQL URL.")
    dialect: str = Field(default="pnl", description="GOLDSKY_DIALECT: pnl (default) or legacy.")
    max_rps: float = Field(
        default=10.0, description="GOLDSKY_MAX_RPS: requests/s for all shards together."
    )
    concurrency: int = Field(default=8, description="In-flight requests per shard process.")
    batch_size: int = Field(
        default=MAX_FIRST, description="Ids per request (graph-node caps `first` at 1000)."
    )
    timeout_s: float = Field(default=30.0, description="Per-request timeout.")
    max_attempts: int = Field(default=8, description="Attempts per request, first one included.")
    max_retry_s: float = Field(
        default=300.0, description="Total time a request may spend retrying."
    )
    backoff_initial_s: float = Field(default=0.5, description="First backoff step (full jitter).")
    backoff_max_s: float = Field(default=30.0, description="Longest single backoff.")
    api_key: str | None = Field(default=None, description="GOLDSKY_API_KEY, for private endpoints.")
    extra_headers: str | None = Field(
        default=None, description="GOLDSKY_HEADERS: a JSON object of extra HTTP headers."
    )
    redis_url: str | None = Field(
        default=None,
        description=(
            "PAYOUT_REDIS_URL: the request-rate window lives in this Redis, shared by every host "
            "(unset: one window per host, in its temp dir)."
        ),
    )

    def settings(self) -> ClientSettings:
        try:
            dialect = Dialect(self.dialect)
        except ValueError:
            raise ValueError(
                f"GOLDSKY_DIALECT must be 'pnl' or 'legacy', got {self.dialect!r}"
            ) from None
        headers = json.loads(self.extra_headers) if self.extra_headers else {}
        if not isinstance(headers, dict):
            raise ValueError("GOLDSKY_HEADERS must be a JSON object of header names to values")
        return ClientSettings(
            endpoint=self.endpoint,
            dialect=dialect,
            max_rps=self.max_rps,
            concurrency=self.concurrency,
            batch_size=self.batch_size,
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            max_retry_s=self.max_retry_s,
            backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=self.backoff_max_s,
            api_key=self.api_key,
            headers={str(k): str(v) for k, v in headers.items()},
            redis_url=self.redis_url,
        )

    def client(self, log: logging.Logger | None = None) -> GoldskyClient:
        return GoldskyClient(self.settings(), log=log)
