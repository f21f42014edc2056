"""One simulated condition: its state as of a block (creation, resolution, payout vector), the\nsimulated chain's block numbers, hashes and times, and the overrides tests put on ids."""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from types import EllipsisType
from typing import Any

#: Timestamp of the simulated chain's block 0 (Polygon PoS genesis, 2020-05-30).
GENESIS_TIMESTAMP = 1_590_824_836
#: Simulated block time; Polygon produces a block roughly every two seconds.
SECONDS_PER_BLOCK = 2
#: graph-node stores BigDecimal with 34 significant digits.
BIGDECIMAL_PRECISION = 34

_PREFIX_HEX = 48
_INDEX_HEX = 16
_MAX_INDEX = 16**_INDEX_HEX
_INDEX_RE = re.compile(r"[0-9a-f]{16}")
_HEX64_RE = re.compile(r"0x[0-9a-f]{64}")
#: Digest layout: created(8) share(4) when(8) split(4) side(1) future(4) oracle(1) bytes.
_DIGEST = struct.Struct(">QIQIBIB")
_YES = (("1", "0"), "1", ("1", "0"))
_NO = (("0", "1"), "1", ("0", "1"))
_SPLIT = (("1", "1"), "2", ("0.5", "0.5"))


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def block_timestamp(number: int) -> int:
    """Unix timestamp of a simulated block (linear chain, fixed block time)."""
    return GENESIS_TIMESTAMP + SECONDS_PER_BLOCK * number


def block_hash(number: int) -> str:
    """Hash of a simulated block.

    The block number is embedded in the last 16 hex digits so that
    ``block: {hash: …}`` can be resolved back to a number in O(1) without storing a
    chain; the first 48 digits are a checksum that rejects made-up hashes.
    """
    return "0x" + _sha256_hex(f"sim-block:{number}")[:_PREFIX_HEX] + f"{number:016x}"


def block_number_from_hash(value: str) -> int | None:
    """Inverse of :func:`block_hash`; ``None`` for anything that is not a simulated hash."""
    text = value.lower()
    if not _HEX64_RE.fullmatch(text):
        return None
    number = int(text[2 + _PREFIX_HEX :], 16)
    return number if block_hash(number) == text else None


def decimal_payouts(numerators: Sequence[str], denominator: str) -> tuple[str, ...] | None:
    """Render ``numerator / denominator`` as graph-node BigDecimal strings.

    Why this exists: the legacy schema exposes `payouts` as decimals (``"0.5"``), which is
    exactly the lossy shape the client must convert back exactly. ``None`` when the inputs
    are not integers or the denominator is zero (the legacy subgraph would store null).
    """
    try:
        den = Decimal(int(denominator))
        nums = [Decimal(int(n)) for n in numerators]
    except (TypeError, ValueError):
        return None
    if den == 0:
        return None
    out: list[str] = []
    with localcontext() as ctx:
        ctx.prec = BIGDECIMAL_PRECISION
        for num in nums:
            try:
                value = (num / den).normalize()
            except InvalidOperation:  # pragma: no cover - guarded by den != 0
                return None
            out.append(format(value, "f"))
    return tuple(out)


def _position_id(cid: str, slot: int) -> str:
    return str(int(_sha256_hex(f"sim-position:{cid}:{slot}"), 16))


@dataclass(slots=True)
class ConditionState:
    """One condition as the subgraph would report it as of a given block.

    Dialect-neutral: :data:`PNL_FIELDS` / :data:`LEGACY_FIELDS` (and :meth:`to_pnl`,
    :meth:`to_legacy`) render the two schemas, so tests can compute the exact expected
    answer for any id and block. ``numerators is None`` means unresolved for generated
    data; for overrides the values are served verbatim (``None`` becomes JSON null even
    where the schema says non-null, to exercise the client's handling of corrupt
    answers). Hash-derived attributes (position ids, question id, ...) are computed on
    access because most queries never select them. Not frozen: a frozen dataclass costs
    three times as much to build, and one is built per row served. Treat it as read-only.
    """

    id: str
    index: int | None
    created_block: int
    resolved_block: int | None
    numerators: tuple[str, ...] | None
    denominator: str | None
    payouts: tuple[str, ...] | None
    resolution_timestamp: str | None
    last_change_block: int
    overridden: bool = False
    outcome_slot_count: int = 2
    oracle_slot: int = 0
    position_ids_override: tuple[str, ...] | None = None

    @property
    def resolved(self) -> bool:
        """Whether the subgraph reports a payout: numerators present, denominator not 0.

        For overrides this only reads the shape (an override of ``[]`` / ``"0"`` is
        unresolved); whether the vector is *valid* is the client's business.
        """
        return bool(self.numerators) and self.denominator not in (None, "0")

    @property
    def position_ids(self) -> tuple[str, ...]:
        if self.position_ids_override is not None:
            return self.position_ids_override
        return (_position_id(self.id, 0), _position_id(self.id, 1))

    @property
    def oracle(self) -> str:
        return "0x" + _sha256_hex(f"sim-oracle:{self.oracle_slot}")[:40]

    @property
    def question_id(self) -> str:
        return "0x" + _sha256_hex(f"sim-question:{self.id}")

    @property
    def resolution_hash(self) -> str | None:
        if self.numerators is None:
            return None
        return "0x" + _sha256_hex(f"sim-resolution:{self.id}")

    @property
    def pnl_numerators(self) -> list[str] | None:
        """pnl `payoutNumerators`: ``[]`` while unresolved (verbatim for overrides)."""
        if self.numerators is None:
            return None if self.overridden else []
        return list(self.numerators)

    @property
    def pnl_denominator(self) -> str | None:
        """pnl `payoutDenominator`: ``"0"`` while unresolved (verbatim for overrides)."""
        if self.denominator is None and not self.overridden:
            return "0"
        return self.denominator

    def to_pnl(self) -> dict[str, Any]:
        """The full pnl-subgraph row."""
        return {name: get(self) for name, get in PNL_FIELDS.items()}

    def to_legacy(self) -> dict[str, Any]:
        """The full legacy-subgraph row: unresolved conditions carry nulls."""
        return {name: get(self) for name, get in LEGACY_FIELDS.items()}


def _opt_list(values: tuple[str, ...] | None) -> list[str] | None:
    return None if values is None else list(values)


FieldGetter = Callable[[ConditionState], Any]

#: pnl-subgraph `Condition` field -> value, for the fields the SDL declares.
PNL_FIELDS: Mapping[str, FieldGetter] = {
    "id": lambda s: s.id,
    "positionIds": lambda s: list(s.position_ids),
    "payoutNumerators": lambda s: s.pnl_numerators,
    "payoutDenominator": lambda s: s.pnl_denominator,
}

#: legacy-subgraph `Condition` field -> value.
LEGACY_FIELDS: Mapping[str, FieldGetter] = {
    "id": lambda s: s.id,
    "oracle": lambda s: s.oracle,
    "questionId": lambda s: s.question_id,
    "outcomeSlotCount": lambda s: s.outcome_slot_count,
    "resolutionTimestamp": lambda s: s.resolution_timestamp,
    "payoutNumerators": lambda s: _opt_list(s.numerators),
    "payoutDenominator": lambda s: s.denominator,
    "payouts": lambda s: _opt_list(s.payouts),
    "resolutionHash": lambda s: s.resolution_hash,
}


@dataclass(frozen=True, slots=True)
class Override:
    """A test-supplied payout for one id, served verbatim (as strings) from `from_block` on.

    ``payouts`` is the legacy decimal list; ``...`` (the default) derives it from the
    numerators and denominator. ``present=False`` hides the id entirely (simulating a
    condition the subgraph does not have).
    """

    id: str
    numerators: tuple[str, ...] | None
    denominator: str | None
    payouts: tuple[str, ...] | EllipsisType | None = ...
    resolution_timestamp: str | EllipsisType | None = ...
    position_ids: tuple[str, ...] | None = None
    from_block: int | None = None
    present: bool = True


def _to_str_tuple(values: Sequence[int | str] | None) -> tuple[str, ...] | None:
    if values is None:
        return None
    if isinstance(values, str):
        raise TypeError("expected a list of values, not a single string")
    return tuple(str(v) for v in values)
