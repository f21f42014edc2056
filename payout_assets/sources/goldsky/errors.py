"""What can go wrong talking to a subgraph, split by what to do about it.

Transient errors are retried with backoff (bounded); permanent errors fail at once with a message
that names the cause and the fix. The split follows graph-node's and Goldsky's real behaviour:
errors arrive as HTTP 200 with an ``errors`` list, rate limiting as 429 or as a body text.
"""

from __future__ import annotations

from collections.abc import Sequence


class GoldskyError(RuntimeError):
    """Base class; ``condition_ids`` names the batch that failed, when there was one."""

    def __init__(self, message: str, condition_ids: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.condition_ids: tuple[str, ...] = tuple(condition_ids)


class TransientGoldskyError(GoldskyError):
    """Worth retrying: rate limits, overload, timeouts, 5xx, cut connections, bad bodies."""

    def __init__(
        self, message: str, retry_after_s: float | None = None, condition_ids: Sequence[str] = ()
    ) -> None:
        super().__init__(message, condition_ids)
        self.retry_after_s = retry_after_s


class RateLimitedError(TransientGoldskyError):
    """HTTP 429 or Goldsky's "surpassed your query allowance" body."""


class BlockNotIndexedError(TransientGoldskyError):
    """The pinned block is beyond the indexed head; it may catch up, so retry for a while."""


class ResponseIntegrityError(TransientGoldskyError):
    """An answer that cannot be trusted: unrequested or repeated ids, more rows than ``first``."""


class PermanentGoldskyError(GoldskyError):
    """Retrying cannot help: wrong schema or dialect, bad argument, refused credentials."""
