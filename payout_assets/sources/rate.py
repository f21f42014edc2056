"""One request rate per endpoint for every process that calls it.

On one machine (the default) that is pyrate-limiter's SQLite bucket with a file lock in the
temp dir, keyed by the endpoint's URL, so eight shard processes (or several scan runs) together
stay under the source's ``*_MAX_RPS``. Runs on several hosts share no temp dir: with
``PAYOUT_REDIS_URL`` set the same window lives in Redis (pyrate-limiter's ``RedisBucket``, whose
Lua script checks and records a request atomically), so every host's runs draw on one allowance.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from pathlib import Path

from pyrate_limiter import AbstractBucket, Limiter, Rate, RedisBucket, SQLiteBucket


def _digest(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode()).hexdigest()[:16]


def rate_limit_db(endpoint: str) -> str:
    """One limiter file per endpoint and host, shared by every process of every backfill."""
    return str(Path(tempfile.gettempdir()) / f"payout-backfill-rate-{_digest(endpoint)}.sqlite")


def rate_limit_key(endpoint: str) -> str:
    """The Redis key of an endpoint's window, shared by every host."""
    return f"payout-backfill:rate:{_digest(endpoint)}"


RATE_HEADROOM = 0.95


def shared_limiter(
    endpoint: str, max_rps: float, db_path: str | None = None, redis_url: str | None = None
) -> Limiter:
    """``max_rps`` as a sliding window: at most N requests in any window of N / max_rps seconds
    (10 per second for the default), less ``RATE_HEADROOM``: an admitted request still waits
    for a thread, a socket and the CPU before it reaches the server (eight shard processes on
    two cores: tens of milliseconds), and that jitter must not pack two windows' requests into
    one of the server's (the README's benchmark shows the cost of the headroom). A window of
    one request per 1/max_rps would be stricter but loses more of the allowance to the same
    jitter at every single request. A JSON-RPC batch of k calls takes k of the N.

    ``redis_url`` (PAYOUT_REDIS_URL) puts the window in Redis for every host; without it the
    window is this host's (``db_path``, by default one file per endpoint in the temp dir)."""
    limit = max(1, int(max_rps))
    window_ms = math.ceil(limit * 1000 / (max_rps * RATE_HEADROOM))
    rates = [Rate(limit, window_ms)]
    bucket: AbstractBucket
    if redis_url:
        from redis import Redis

        bucket = RedisBucket.init(
            rates,
            Redis.from_url(redis_url),
            f"{rate_limit_key(endpoint)}:{limit}-per-{window_ms}ms",
        )
    else:
        bucket = SQLiteBucket.init_from_file(
            rates,
            table=f"rate_{limit}_per_{window_ms}ms",
            db_path=db_path or rate_limit_db(endpoint),
            use_file_lock=True,
        )
    return Limiter(bucket, buffer_ms=50)
