"""A local Polygon (anvil with the stand-in contract) per module, and a provider proxy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from payout_standins.polygon import LocalPolygon


@pytest.fixture(scope="module")
def chain() -> Iterator[LocalPolygon]:
    with LocalPolygon(slots_in_an_epoch=1) as node:
        yield node


@pytest.fixture
def chain_node(tmp_path) -> Iterator[LocalPolygon]:
    """A chain of the test's own (for tests whose runs read it from other processes)."""
    with LocalPolygon(slots_in_an_epoch=1) as node:
        yield node
