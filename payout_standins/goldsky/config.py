"""The simulator's configuration and the constants its answers share."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

_log = logging.getLogger(__name__)

Dialect = Literal["pnl", "legacy"]

#: Where the SDL of both dialects lives (shared with the client).
SCHEMA_DIR = (
    Path(__file__).resolve().parents[2] / "payout_assets" / "sources" / "goldsky" / "schemas"
)
#: Deployment id reported by ``_meta`` and in graph-node's block errors.
DEPLOYMENT_ID = "QmSimulated"
_PROJECT_ID = "project_simulated"
_SUBGRAPHS: dict[str, tuple[str, str]] = {
    "pnl": ("pnl-subgraph", "0.0.14"),
    "legacy": ("positions-subgraph", "0.0.7"),
}
_MAX_BODY = 32 * 1024 * 1024
_MODE_NOTES = {
    "drop": "connection dropped without a response",
    "truncate_body": "body cut in half",
    "truncate_connection": "connection closed mid-body",
}
_HTML_PAGES = {
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
    504: "504 Gateway Time-out",
}


# --------------------------------------------------------------------------- config
@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Everything needed to start a simulator; all fields have demo-friendly defaults.

    ``rate_limit`` is ``(requests, window_s)`` for the sliding-window limiter (Goldsky's
    Polymarket endpoints allow about 100 req/s per IP), ``advance_per_request`` moves the
    head by that many blocks on every GraphQL request, ``latency_ms ± jitter_ms`` is slept
    in the handler thread before answering.
    """

    size: int = 10_000
    seed: int = 0
    resolved_share: float = 0.75
    split_share: float = 0.05
    head_block: int = 50_000_000
    advance_per_request: int = 0
    dialect: Dialect = "pnl"
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_limit: tuple[int, float] | None = None
    api_key: str | None = None
    skip_cap: int = 5000
    max_first: int = 1000
    port: int = 0
    host: str = "127.0.0.1"
    fault_seed: int = 0
    record_limit: int = 10_000
    deployment: str = DEPLOYMENT_ID  # what ``_meta.deployment`` reports
