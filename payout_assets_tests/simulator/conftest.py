"""Fixtures of the simulator tests: a plain HTTP client and a small simulated universe."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from payout_standins.goldsky import (
    Simulator,
    run_simulator,
)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as c:
        yield c


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with run_simulator(size=3000, seed=7) as s:
        yield s
