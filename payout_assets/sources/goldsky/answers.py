"""What the subgraph answered: a good answer's ``data``, or the right error for what went wrong
(transient, rate-limited, permanent with its fix), and rows as the exact strings sent."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from payout_assets.sources.goldsky.documents import Dialect
from payout_assets.sources.goldsky.errors import (
    BlockNotIndexedError,
    PermanentGoldskyError,
    RateLimitedError,
    ResponseIntegrityError,
    TransientGoldskyError,
)
from payout_assets.validate.payouts import MAX_UINT_DIGITS, RawCondition

ALLOWANCE_TEXT = "surpassed your query allowance"
TRANSIENT_MESSAGES = (
    "indexing_error",
    "query timed out",
    "service is overloaded",
    "too many requests",
    "database unavailable",
)


def retry_after_s(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def permanent_hint(message: str, dialect: Dialect) -> str:
    """The fix for a permanent graph-node error, for the dialect the client speaks.

    Why dialect-aware: a legacy client on pnl-subgraph and a pnl client on an old schema fail
    with the same "has no field" text but need opposite settings.
    """
    lowered = message.lower()
    if (
        "has no field" in lowered
        or "unknown argument" in lowered
        or "cannot query field" in lowered
    ):
        if dialect is Dialect.LEGACY:
            return (
                "the endpoint's schema lacks a field of the legacy dialect (GOLDSKY_DIALECT=legacy "
                "asks for decimal `payouts` and `resolutionTimestamp`): for pnl-subgraph unset "
                "GOLDSKY_DIALECT or set it to pnl, or point GOLDSKY_ENDPOINT at the legacy subgraph"
            )
        return (
            "the endpoint's schema lacks a field of the pnl dialect: check GOLDSKY_ENDPOINT points "
            "at pnl-subgraph, or set GOLDSKY_DIALECT=legacy for the old schema"
        )
    if "`first` argument" in lowered:
        return (
            "a batch asked for more rows than this endpoint allows per request (graph-node's cap "
            "is 1000; this host may cap lower): set the Goldsky resource's batch_size to at most "
            "the limit named in the message"
        )
    if "`skip` argument" in lowered:
        return "page with an `id_gt` cursor instead of `skip`, which hosts cap"
    return "check GOLDSKY_ENDPOINT and GOLDSKY_DIALECT"


def raw_condition(
    cid: str, row: Mapping[str, Any], condition_ids: Sequence[str] = ()
) -> RawCondition:
    """The row's values as strings, exactly as sent; their meaning is checked by the parser.

    A list field that is not a list (or a scalar that is a list or an object) breaks the schema:
    ``tuple("10")`` would silently read as ``("1", "0")``, so the answer is refused instead.
    """

    def strings(name: str) -> tuple[str, ...] | None:
        value = row.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or any(isinstance(v, list | dict) for v in value):
            raise ResponseIntegrityError(
                f"answer has `{name}` = {json.dumps(value)[:80]} for {cid}: expected a list of "
                "scalars",
                condition_ids=condition_ids,
            )
        return tuple(v if isinstance(v, str) else json.dumps(v) for v in value)

    def string(name: str) -> str | None:
        value = row.get(name)
        if value is None:
            return None
        if isinstance(value, list | dict):
            raise ResponseIntegrityError(
                f"answer has `{name}` = {json.dumps(value)[:80]} for {cid}: expected a scalar",
                condition_ids=condition_ids,
            )
        return value if isinstance(value, str) else json.dumps(value)

    return RawCondition(
        condition_id=cid,
        payout_numerators=strings("payoutNumerators"),
        payout_denominator=string("payoutDenominator"),
        payouts=strings("payouts"),
        resolution_timestamp=string("resolutionTimestamp"),
    )


def _json_int(literal: str) -> int | str:
    """A JSON integer literal as an int, or kept as its text when it is longer than any integer
    the subgraph has (Python refuses ``int()`` of more than 4,300 digits, and would fail the whole
    answer): the payout parser then rejects that one row with the reason."""
    return int(literal) if len(literal) <= MAX_UINT_DIGITS else literal


def classify(
    response: httpx.Response,
    condition_ids: Sequence[str],
    dialect: Dialect = Dialect.PNL,
    credentials: bool = False,
) -> Mapping[str, Any]:
    """The ``data`` of a good answer; otherwise the right error for what went wrong.

    ``credentials`` says whether an authorization header was sent, so a 401/403 can say whether
    the key is missing or wrong (never what it is).
    """
    status = response.status_code
    text = response.text
    retry_after = retry_after_s(response.headers.get("retry-after"))
    if status == 429 or ALLOWANCE_TEXT in text:
        raise RateLimitedError(
            f"rate limited by the endpoint (HTTP {status})", retry_after, condition_ids
        )
    if status >= 500 or status == 408:
        raise TransientGoldskyError(f"HTTP {status} from the endpoint", retry_after, condition_ids)
    if status in (401, 403):
        fix = (
            "GOLDSKY_API_KEY (or the Authorization header in GOLDSKY_HEADERS) was sent and "
            "refused: check it is the key for this endpoint"
            if credentials
            else "no API key was sent: set GOLDSKY_API_KEY for a private endpoint"
        )
        raise PermanentGoldskyError(
            f"HTTP {status}: the endpoint refused the request as unauthorised; {fix}",
            condition_ids,
        )
    if status >= 400:
        fix = (
            "check GOLDSKY_ENDPOINT is the subgraph's GraphQL URL (…/subgraphs/<name>/<version>/gn)"
            if status in (404, 405)
            else "the endpoint refused the request as malformed; check GOLDSKY_ENDPOINT and "
            "GOLDSKY_DIALECT"
        )
        raise PermanentGoldskyError(
            f"HTTP {status} from the endpoint: {text[:300]} — {fix}", condition_ids
        )
    try:
        payload = json.loads(text, parse_int=_json_int)
    except ValueError:
        raise TransientGoldskyError(
            f"answer is not JSON (HTTP {status}, {len(text)} bytes): {text[:80]!r}",
            None,
            condition_ids,
        ) from None
    if not isinstance(payload, dict):
        raise TransientGoldskyError("answer is JSON but not an object", None, condition_ids)
    errors = payload.get("errors")
    if errors:
        messages = "; ".join(
            str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors
        )
        lowered = messages.lower()
        if "only indexed up to block number" in lowered:
            raise BlockNotIndexedError(
                f"{messages} (the backfill is pinned to a block this endpoint has not indexed; "
                "if it never catches up, re-materialise missing_condition_ids to take a new snapshot)",
                None,
                condition_ids,
            )
        if any(m in lowered for m in TRANSIENT_MESSAGES):
            raise TransientGoldskyError(f"graph-node: {messages}", None, condition_ids)
        raise PermanentGoldskyError(
            f"graph-node: {messages} — {permanent_hint(messages, dialect)}", condition_ids
        )
    data = payload.get("data")
    if not isinstance(data, dict):
        raise TransientGoldskyError("answer has neither data nor errors", None, condition_ids)
    return data
