"""Requests the simulator tests send, as the backfill's client would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from payout_standins.goldsky import (
    Simulator,
)

PNL_FIELDS = "id payoutNumerators payoutDenominator"
LEGACY_FIELDS = "id payoutNumerators payoutDenominator payouts resolutionTimestamp outcomeSlotCount"
BY_IDS = "query ByIds($ids: [ID!]!, $first: Int) { conditions(first: $first, where: {id_in: $ids}) { %s } }"
ROOT = Path(__file__).resolve().parents[2]


def post(
    client: httpx.Client,
    sim: Simulator,
    query: str,
    variables: dict[str, Any] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    payload: dict[str, Any] = {"query": query}
    if variables is not None:
        payload["variables"] = variables
    return client.post(sim.url, json=payload, **kwargs)


def by_ids(
    client: httpx.Client, sim: Simulator, ids: list[str], first: int | None = None
) -> dict[str, Any]:
    fields = PNL_FIELDS if sim.dialect == "pnl" else LEGACY_FIELDS
    r = post(client, sim, BY_IDS % fields, {"ids": ids, "first": first})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def messages(body: dict[str, Any]) -> list[str]:
    return [e["message"] for e in body.get("errors", [])]
