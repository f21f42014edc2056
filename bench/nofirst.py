"""Regression emulation for ``bench.regress`` (its forkserver imports it, so every run forked
from it fetches this way): drop ``first``.

Why it exists: the benchmark has to show that a client which stops sending ``first`` is caught.
Without ``first`` graph-node answers at most 100 rows, so a client that still wants every row
must ask for at most 100 ids per request: ten times the requests, so a ten times worse
wall/floor. This module makes the shipped client do exactly that (a query without ``first``,
batches of 100) without touching ``payout_assets``; the simulator's traffic log then shows
``max_first`` 0 and queries without ``first``.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any

from gql import gql

from payout_assets.sources.goldsky import documents
from payout_assets.sources.goldsky.client import ClientSettings, Dialect
from payout_assets.sources.goldsky.resource import GoldskyResource

GRAPH_NODE_DEFAULT_FIRST = 100
_QUERY_WITHOUT_FIRST = """
query PayoutsByIds($ids: [ID!]!, $block: Block_height) {
  conditions(where: { id_in: $ids }, block: $block) {
    id
    payoutNumerators
    payoutDenominator
  }
}
"""

_original_document = documents.document
_original_settings = GoldskyResource.settings


@cache
def _document(name: str, dialect: Dialect) -> Any:
    if name == "payouts_pnl":
        return gql(_QUERY_WITHOUT_FIRST).document
    return _original_document(name, dialect)


def _settings(self: GoldskyResource) -> ClientSettings:
    return dataclasses.replace(_original_settings(self), batch_size=GRAPH_NODE_DEFAULT_FIRST)


documents.document = _document  # type: ignore[assignment]
GoldskyResource.settings = _settings  # type: ignore[method-assign]
