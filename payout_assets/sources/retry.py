"""The retry policy both sources share: tenacity, bounded in attempts and in time, full-jitter
exponential backoff that never undercuts the server's Retry-After, each retry counted and logged."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)


@dataclass
class RetryPolicy:
    source: str  # how the log names it: "goldsky", "polygon"
    transient: type[BaseException]  # what is worth another attempt (may carry retry_after_s)
    max_attempts: int
    max_retry_s: float
    backoff_initial_s: float
    backoff_max_s: float
    log: logging.Logger
    sleep: Callable[[float], None] = time.sleep
    on_retry: Callable[[], None] = field(default=lambda: None)

    @classmethod
    def of(
        cls,
        source: str,
        transient: type[BaseException],
        settings: Any,
        log: logging.Logger,
        **kw: Any,
    ) -> RetryPolicy:
        """The policy a client's settings describe (their max_attempts, max_retry_s,
        backoff_initial_s and backoff_max_s)."""
        return cls(
            source,
            transient,
            settings.max_attempts,
            settings.max_retry_s,
            settings.backoff_initial_s,
            settings.backoff_max_s,
            log,
            **kw,
        )

    def retrying(self) -> Retrying:
        # stop_before_delay, not stop_after_delay: a backoff (or a long Retry-After) that would
        # end past the budget stops the retries now instead of sleeping beyond max_retry_s.
        return Retrying(
            stop=stop_after_attempt(self.max_attempts) | stop_before_delay(self.max_retry_s),
            wait=self._wait,
            retry=retry_if_exception_type(self.transient),
            before_sleep=self._before_sleep,
            sleep=self.sleep,
            reraise=True,
        )

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_random_exponential(
            multiplier=self.backoff_initial_s, max=self.backoff_max_s
        )(state)
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after_s", None)
        return max(backoff, retry_after) if retry_after is not None else backoff

    def _before_sleep(self, state: RetryCallState) -> None:
        self.on_retry()
        exc = state.outcome.exception() if state.outcome else None
        self.log.warning(
            "%s: attempt %d failed (%s); retrying in %.2fs",
            self.source,
            state.attempt_number,
            exc,
            state.next_action.sleep if state.next_action else 0.0,
        )
