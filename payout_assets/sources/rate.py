"""One request rate per endpoint for every process on the host: pyrate-limiter's SQLite bucket
with a file lock, keyed by the endpoint's URL, so eight shard processes (or several scan runs)
together stay under the source's ``*_MAX_RPS``."""

from __future__ import annotations

import hashlib
import math
import tempfile
from pathlib import Path

from pyrate_limiter import Limiter, Rate, SQLiteBucket


def rate_limit_db(endpoint: str) -> str:
    """One limiter file per endpoint and host, shared by every process of every backfill."""
    digest = hashlib.sha256(endpoint.encode()).hexdigest()[:16]
    return str(Path(tempfile.gettempdir()) / f"payout-backfill-rate-{digest}.sqlite")


RATE_HEADROOM = 0.95


def host_limiter(endpoint: str, max_rps: float, db_path: str | None = None) -> Limiter:
    """``max_rps`` as a sliding window: at most N requests in any window of N / max_rps seconds
    (10 per second for the default), less ``RATE_HEADROOM``: an admitted request still waits
    for a thread, a socket and the CPU before it reaches the server (eight shard processes on
    two cores: tens of milliseconds), and that jitter must not pack two windows' requests into
    one of the server's (the README's benchmark shows the cost of the headroom). A window of
    one request per 1/max_rps would be stricter but loses more of the allowance to the same
    jitter at every single request. A JSON-RPC batch of k calls takes k of the N."""
    limit = max(1, int(max_rps))
    window_ms = math.ceil(limit * 1000 / (max_rps * RATE_HEADROOM))
    bucket = SQLiteBucket.init_from_file(
        [Rate(limit, window_ms)],
        table=f"rate_{limit}_per_{window_ms}ms",
        db_path=db_path or rate_limit_db(endpoint),
        use_file_lock=True,
    )
    return Limiter(bucket, buffer_ms=50)
