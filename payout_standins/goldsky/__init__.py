"""Local Goldsky / graph-node simulator for the payout backfill.

A real HTTP GraphQL server on 127.0.0.1 that answers pnl-subgraph (or legacy) `Condition`
queries with graph-node's rules, over a deterministic synthetic universe, with fault
injection and a traffic log. Used by the demo, the tests and the benchmark.
"""

from .conditions import (
    GENESIS_TIMESTAMP,
    SECONDS_PER_BLOCK,
    ConditionState,
    Override,
    block_hash,
    block_number_from_hash,
    block_timestamp,
    decimal_payouts,
)
from .faults import (
    ALLOWANCE_MESSAGE,
    INDEXING_ERROR_MESSAGE,
    OVERLOADED_MESSAGE,
    TIMEOUT_MESSAGE,
    FaultKind,
    FaultPlan,
    FaultRule,
    RateLimiter,
    RequestInfo,
)
from .server import (
    DEPLOYMENT_ID,
    SCHEMA_DIR,
    Dialect,
    Simulator,
    SimulatorConfig,
    load_schema,
    run_simulator,
    serve_forever,
)
from .traffic import RequestRecord, TrafficLog
from .universe import (
    Universe,
)

__all__ = [
    "ALLOWANCE_MESSAGE",
    "DEPLOYMENT_ID",
    "GENESIS_TIMESTAMP",
    "INDEXING_ERROR_MESSAGE",
    "OVERLOADED_MESSAGE",
    "SCHEMA_DIR",
    "SECONDS_PER_BLOCK",
    "TIMEOUT_MESSAGE",
    "ConditionState",
    "Dialect",
    "FaultKind",
    "FaultPlan",
    "FaultRule",
    "Override",
    "RateLimiter",
    "RequestInfo",
    "RequestRecord",
    "Simulator",
    "SimulatorConfig",
    "TrafficLog",
    "Universe",
    "block_hash",
    "block_number_from_hash",
    "block_timestamp",
    "decimal_payouts",
    "load_schema",
    "run_simulator",
    "serve_forever",
]
