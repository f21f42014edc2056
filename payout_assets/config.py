"""Environment settings shared by the Dagster definitions, the CLI and the tests.

Everything a user can change is an environment variable (see the README's table). Values that
Dagster needs while it *loads* the code location (the shard count fixes the partition keys) are
read here; values a run needs are passed to resources through ``dg.EnvVar`` so the UI shows the
variable's name rather than its (possibly secret) value.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

DEFAULT_GOLDSKY_ENDPOINT = (
    "https://api.goldsky.com/api/public/project_cl6mb8i9h0003e201j6li0diw"
    "/subgraphs/pnl-subgraph/0.0.14/gn"
)
DEFAULT_SHARDS = 8
DEFAULT_MAX_RPS = 10.0
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def dagster_home() -> Path:
    """The Dagster instance directory; the embedded ClickHouse store lives inside it by default."""
    home = os.environ.get("DAGSTER_HOME") or str(PROJECT_ROOT / "dagster_home")
    return Path(home).resolve()


def default_clickhouse_dsn() -> str:
    return f"chdb://{dagster_home() / 'clickhouse'}"


def clickhouse_dsn() -> str:
    """CLICKHOUSE_DSN, or the embedded store in the Dagster home when it is unset or empty: the
    one fallback every command and the definitions use."""
    return os.environ.get("CLICKHOUSE_DSN") or default_clickhouse_dsn()


def shard_count() -> int:
    """Number of worker shards (static partitions); read at load time because it names them."""
    raw = os.environ.get("PAYOUT_SHARDS", str(DEFAULT_SHARDS))
    try:
        count = int(raw)
    except ValueError:
        raise ValueError(f"PAYOUT_SHARDS must be a whole number, got {raw!r}") from None
    if not 1 <= count <= 256:
        raise ValueError(f"PAYOUT_SHARDS must be between 1 and 256, got {count}")
    return count


def env_or_default(name: str, default: str) -> str | dg.EnvVar:
    """An ``EnvVar`` when the variable is set (the UI then shows its name, never its value),
    otherwise the documented default, so the project runs with no configuration at all."""
    return dg.EnvVar(name) if os.environ.get(name) else default
