"""Exact payout parsing: strings from the subgraph to integers, never through a float.

pnl-subgraph gives ``payoutNumerators`` / ``payoutDenominator`` as BigInt strings; the legacy
schema may give only ``payouts`` as BigDecimal strings (each numerator / sum). Decimals become
integer numerators over their least common denominator with :class:`fractions.Fraction`, so
``["0.54", "0.46"]`` is ``[27, 23] / 50`` and ``["0.5", "0.5"]`` is ``[1, 1] / 2``.

The values come from outside, so what a conversion may cost is bounded before it starts: each
value is refused by its length, its form and (for decimals) its exponent first, since
``Fraction(Decimal("1e999999999"))`` builds an integer of a billion digits and ``int()`` of
thousands of digits raises. A refused value is one row's ``rejected`` reason, never a failed shard.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from fractions import Fraction

_UINT = re.compile(r"[0-9]+")
# A decimal share as graph-node writes a BigDecimal: digits, an optional fraction, an optional
# exponent (its digits captured so that its size is checked before anything is converted).
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?")
UINT64_MAX = 2**64 - 1
MAX_UINT_DIGITS = 78  # a uint256, the widest integer on chain, has 78 digits
MAX_DECIMAL_CHARS = 100  # graph-node's BigDecimal keeps 34 significant digits
MAX_DECIMAL_EXPONENT = 100  # with the length above: no value beyond 10**200 is ever built
MAX_OUTCOMES = 256  # ConditionalTokens' prepareCondition allows at most 256 outcome slots
DATETIME_MAX = 2**32 - 1  # ClickHouse DateTime holds seconds up to 2106-02-07 06:28:15 UTC
SHOWN_CHARS = 24  # how much of a refused value a reason quotes


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


def shown(text: object) -> str:
    """A value as a reason quotes it: at most ``SHOWN_CHARS`` characters, and its length when
    it is cut, so a reason stays one line however long the value."""
    if not isinstance(text, str):
        return repr(text)[:SHOWN_CHARS]
    if len(text) <= SHOWN_CHARS:
        return repr(text)
    return f"{text[:SHOWN_CHARS]!r}… ({len(text):,} characters)"


def parse_uint(text: str, what: str) -> int:
    """An unsigned integer of at most ``MAX_UINT_DIGITS`` digits (refused by length before
    ``int()`` runs; whether it fits the UInt64 columns is the pandera model's rule)."""
    if isinstance(text, str) and len(text) > MAX_UINT_DIGITS and _UINT.fullmatch(text):
        raise PayoutFormatError(
            f"{what} {shown(text)} has more than {MAX_UINT_DIGITS} digits (a uint256's most)"
        )
    if not isinstance(text, str) or len(text) > MAX_UINT_DIGITS or not _UINT.fullmatch(text):
        raise PayoutFormatError(f"{what} {shown(text)} is not an unsigned integer")
    return int(text)


def check_outcome_count(values: tuple[str, ...], what: str) -> None:
    """Refuse a vector longer than a condition can be, before any of its values is parsed."""
    if len(values) > MAX_OUTCOMES:
        raise PayoutFormatError(
            f"{what} has {len(values):,} outcomes; a condition has at most {MAX_OUTCOMES}"
        )


def parse_decimal_share(text: str) -> Fraction:
    """One decimal share as an exact fraction; its length, form and exponent are checked first,
    so no conversion ever builds a number beyond 10**200."""
    if not isinstance(text, str) or len(text) > MAX_DECIMAL_CHARS:
        raise PayoutFormatError(
            f"payout {shown(text)} is longer than {MAX_DECIMAL_CHARS} characters"
        )
    form = _DECIMAL.fullmatch(text)
    if form is None:
        raise PayoutFormatError(f"payout {shown(text)} is not a finite decimal")
    if form.group(1) is not None and abs(int(form.group(1))) > MAX_DECIMAL_EXPONENT:
        raise PayoutFormatError(
            f"payout {shown(text)} has an exponent beyond ±{MAX_DECIMAL_EXPONENT}"
        )
    return Fraction(Decimal(text))


def winning_index(numerators: tuple[int, ...] | list[int], denominator: int) -> int:
    """The 0-based outcome that holds the whole payout, or -1 when the payout is split."""
    winners = [i for i, n in enumerate(numerators) if n == denominator and denominator > 0]
    if len(winners) == 1 and sum(numerators) == denominator:
        return winners[0]
    return -1


def decimals_to_fraction_vector(payouts: tuple[str, ...]) -> tuple[tuple[int, ...], int]:
    """Decimal payout shares to integer numerators over their least common denominator."""
    check_outcome_count(payouts, "payouts")
    try:
        fractions = [parse_decimal_share(p) for p in payouts]
    except (InvalidOperation, ArithmeticError, TypeError):
        raise PayoutFormatError(f"payouts {shown(str(list(payouts)))} are not decimals") from None
    if any(f < 0 for f in fractions):
        raise PayoutFormatError(f"payouts {shown(str(list(payouts)))} contain a negative share")
    lcd = math.lcm(*(f.denominator for f in fractions)) if fractions else 1
    return tuple(int(f * lcd) for f in fractions), lcd


def parse_timestamp(text: str | None) -> datetime | None:
    """Seconds since the epoch, refused beyond what the ``DateTime`` columns hold (the
    platform's own limit, ``time_t``, is reached long after and raises instead)."""
    if text is None:
        return None
    seconds = parse_uint(text, "resolutionTimestamp")
    if seconds > DATETIME_MAX:
        raise PayoutFormatError(
            f"resolutionTimestamp {shown(text)} is beyond the DateTime range "
            f"(at most {DATETIME_MAX}, 2106-02-07)"
        )
    return datetime.fromtimestamp(seconds, tz=UTC)


def parse_payout(raw: RawCondition) -> Payout | None:
    """The exact payout, or ``None`` when the condition is not resolved yet.

    Unresolved is what the subgraph says it is: ``[]`` / ``"0"`` in pnl-subgraph, nulls in the
    legacy schema. Anything else that is malformed raises :class:`PayoutFormatError`.
    """
    resolved_at = parse_timestamp(raw.resolution_timestamp)
    if raw.payout_denominator is not None and raw.payout_numerators is not None:
        denominator = parse_uint(raw.payout_denominator, "payoutDenominator")
        check_outcome_count(raw.payout_numerators, "payoutNumerators")
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
