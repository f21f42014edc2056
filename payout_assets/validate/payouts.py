"""Exact payout parsing: strings from the subgraph to integers, never through a float.

pnl-subgraph gives ``payoutNumerators`` / ``payoutDenominator`` as BigInt strings; the legacy
schema may give only ``payouts`` as BigDecimal strings (each numerator / sum). Decimals become
integer numerators over their least common denominator with :class:`fractions.Fraction`, so
``["0.54", "0.46"]`` is ``[27, 23] / 50`` and ``["0.5", "0.5"]`` is ``[1, 1] / 2``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from fractions import Fraction

_UINT = re.compile(r"[0-9]+")
UINT64_MAX = 2**64 - 1


class PayoutFormatError(ValueError):
    """The source's value is not a well-formed payout; the message is the ledger's reason."""


@dataclass(frozen=True)
class RawCondition:
    """One ``Condition`` as the subgraph returned it (strings, as in the JSON)."""

    condition_id: str  # canonical 64 lowercase hex
    payout_numerators: tuple[str, ...] | None
    payout_denominator: str | None
    payouts: tuple[str, ...] | None = None
    resolution_timestamp: str | None = None


@dataclass(frozen=True)
class Payout:
    """An exact payout vector. ``numerators`` are Python ints, so nothing is truncated here;
    range limits of the ClickHouse columns are enforced by the pandera model."""

    numerators: tuple[int, ...]
    denominator: int
    resolved_at: datetime | None

    @property
    def winning_index(self) -> int:
        return winning_index(self.numerators, self.denominator)


def parse_uint(text: str, what: str) -> int:
    if not isinstance(text, str) or not _UINT.fullmatch(text):
        raise PayoutFormatError(f"{what} {text!r} is not an unsigned integer")
    return int(text)


def winning_index(numerators: tuple[int, ...] | list[int], denominator: int) -> int:
    """The 0-based outcome that holds the whole payout, or -1 when the payout is split."""
    winners = [i for i, n in enumerate(numerators) if n == denominator and denominator > 0]
    if len(winners) == 1 and sum(numerators) == denominator:
        return winners[0]
    return -1


def decimals_to_fraction_vector(payouts: tuple[str, ...]) -> tuple[tuple[int, ...], int]:
    """Decimal payout shares to integer numerators over their least common denominator."""
    try:
        fractions = [Fraction(Decimal(p)) for p in payouts]
    except (InvalidOperation, ValueError, TypeError):
        raise PayoutFormatError(f"payouts {list(payouts)!r} are not decimals") from None
    if any(f < 0 for f in fractions):
        raise PayoutFormatError(f"payouts {list(payouts)!r} contain a negative share")
    lcd = math.lcm(*(f.denominator for f in fractions)) if fractions else 1
    return tuple(int(f * lcd) for f in fractions), lcd


def parse_timestamp(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromtimestamp(parse_uint(text, "resolutionTimestamp"), tz=UTC)


def parse_payout(raw: RawCondition) -> Payout | None:
    """The exact payout, or ``None`` when the condition is not resolved yet.

    Unresolved is what the subgraph says it is: ``[]`` / ``"0"`` in pnl-subgraph, nulls in the
    legacy schema. Anything else that is malformed raises :class:`PayoutFormatError`.
    """
    resolved_at = parse_timestamp(raw.resolution_timestamp)
    if raw.payout_denominator is not None and raw.payout_numerators is not None:
        denominator = parse_uint(raw.payout_denominator, "payoutDenominator")
        numerators = tuple(parse_uint(n, "payoutNumerator") for n in raw.payout_numerators)
        if denominator == 0 and not numerators:
            return None
        return Payout(numerators, denominator, resolved_at)
    if raw.payouts is not None:
        numerators, denominator = decimals_to_fraction_vector(raw.payouts)
        return Payout(numerators, denominator, resolved_at)
    if raw.payout_numerators is None and raw.payout_denominator is None:
        return None
    raise PayoutFormatError("payoutNumerators and payoutDenominator must both be set or both null")
