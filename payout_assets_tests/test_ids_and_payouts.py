"""Id normalisation and exact payout parsing (property-based where the space is large)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payout_assets.validate.ids import InvalidId, from_subgraph_id, normalize_condition_id
from payout_assets.validate.payouts import (
    PayoutFormatError,
    RawCondition,
    decimals_to_fraction_vector,
    parse_payout,
    winning_index,
)
from payout_assets.validate.schema import failures_by_row, payout_frame, validate_chunks

hex64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


@given(hex64, st.booleans(), st.booleans(), st.sampled_from(["", " ", "\t", "  \n"]))
def test_any_spelling_of_a_valid_id_normalises_to_one_form(
    cid: str, prefix: bool, upper: bool, pad: str
) -> None:
    text = ("0x" if prefix else "") + cid
    text = text.upper() if upper else text
    assert normalize_condition_id(pad + text + pad) == cid


@given(st.text(max_size=80))
def test_anything_else_is_invalid_with_a_reason(text: str) -> None:
    result = normalize_condition_id(text)
    body = text.strip().lower().removeprefix("0x")
    if len(body) == 64 and all(c in "0123456789abcdef" for c in body):
        assert result == body
    else:
        assert isinstance(result, InvalidId)
        assert result.reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty id"),
        ("0x", "empty id"),
        ("0xzz", "not hexadecimal"),
        ("ab" * 31, "62 hex digits, a condition id has 64"),
    ],
)
def test_invalid_reasons_name_the_problem(raw: str, reason: str) -> None:
    assert normalize_condition_id(raw) == InvalidId(raw.strip(), reason)


def test_subgraph_ids_must_be_lowercase_0x() -> None:
    assert from_subgraph_id("0x" + "a" * 64) == "a" * 64
    assert isinstance(from_subgraph_id("0x" + "A" * 64), InvalidId)
    assert isinstance(from_subgraph_id("a" * 64), InvalidId)


vectors = st.lists(st.integers(min_value=0, max_value=2**256 - 1), min_size=1, max_size=8).filter(
    lambda v: sum(v) > 0
)


@given(vectors)
def test_integer_vectors_round_trip_exactly(numerators: list[int]) -> None:
    raw = RawCondition("a" * 64, tuple(map(str, numerators)), str(sum(numerators)))
    payout = parse_payout(raw)
    assert payout is not None
    assert payout.numerators == tuple(numerators)
    assert payout.denominator == sum(numerators)


@given(vectors)
def test_decimal_shares_become_exact_integers_over_the_lcd(numerators: list[int]) -> None:
    total = sum(numerators)
    shares = [Fraction(n, total) for n in numerators]
    # A decimal string exists for a share only when its denominator has no prime but 2 and 5.
    decimals = []
    for share in shares:
        d = share.denominator
        for p in (2, 5):
            while d % p == 0:
                d //= p
        if d != 1:
            return
        decimals.append(str(Decimal(share.numerator) / Decimal(share.denominator)))
    nums, den = decimals_to_fraction_vector(tuple(decimals))
    assert [Fraction(n, den) for n in nums] == shares
    assert sum(nums) == den


def test_known_decimal_examples() -> None:
    assert decimals_to_fraction_vector(("0.54", "0.46")) == ((27, 23), 50)
    assert decimals_to_fraction_vector(("0.5", "0.5")) == ((1, 1), 2)
    assert decimals_to_fraction_vector(("1", "0")) == ((1, 0), 1)


def test_unresolved_and_malformed() -> None:
    assert parse_payout(RawCondition("a" * 64, (), "0")) is None
    assert parse_payout(RawCondition("a" * 64, None, None)) is None
    with pytest.raises(PayoutFormatError, match="not an unsigned integer"):
        parse_payout(RawCondition("a" * 64, ("-1", "2"), "1"))
    with pytest.raises(PayoutFormatError, match="not an unsigned integer"):
        parse_payout(RawCondition("a" * 64, ("0.5", "0.5"), "1"))
    with pytest.raises(PayoutFormatError, match="both be set"):
        parse_payout(RawCondition("a" * 64, ("1", "0"), None))


def test_winning_index_is_minus_one_for_split_payouts() -> None:
    assert winning_index((1, 0), 1) == 0
    assert winning_index((0, 1), 1) == 1
    assert winning_index((1, 1), 2) == -1
    assert winning_index((27, 23), 50) == -1
    assert winning_index((0, 0, 5), 5) == 2


def _row(cid: str, nums: list[int], den: int) -> dict[str, object]:
    return {
        "condition_id": cid,
        "payout_numerators": nums,
        "payout_denominator": den,
        "winning_index": winning_index(nums, den),
        "resolved_at": None,
    }


@given(vectors)
def test_pandera_accepts_every_valid_vector_that_fits_uint64(numerators: list[int]) -> None:
    fits = all(n < 2**64 for n in numerators) and sum(numerators) < 2**64
    failures = failures_by_row(payout_frame([_row("a" * 64, numerators, sum(numerators))]))
    if fits and len(numerators) >= 2:
        assert failures == {}
    else:
        assert failures[0]


@given(vectors, st.integers(min_value=1, max_value=10))
def test_pandera_rejects_a_denominator_that_is_not_the_sum(
    numerators: list[int], delta: int
) -> None:
    failures = failures_by_row(payout_frame([_row("b" * 64, numerators, sum(numerators) + delta)]))
    assert "numerator_sum_equals_denominator" in failures[0]


def test_pandera_names_each_broken_rule() -> None:
    frame = payout_frame(
        [
            _row("a" * 64, [1, 0], 1),
            _row("b" * 64, [1], 1),
            _row("c" * 64, [2**64, 0], 2**64),
            {**_row("d" * 64, [1, 1], 2), "winning_index": 0},
            _row("e" * 64, [1, 2], 3),
        ]
    )
    failures = failures_by_row(frame)
    assert 0 not in failures and 4 not in failures
    assert failures[1] == ["at_least_two_outcomes"]
    assert set(failures[2]) == {"numerators_fit_uint64", "denominator_positive_uint64"}
    assert failures[3] == ["winning_index_consistent"]


def test_stored_rows_are_judged_exactly_though_each_vector_is_validated_once() -> None:
    """Stored payouts share a few vectors; a row that breaks a rule inside a common vector (a
    future resolved_at) or with a vector of its own (a wrong sum) is still counted and named."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [
        (
            f"{i:064x}",
            [1, 0] if i % 2 else [0, 1],
            1,
            0 if i % 2 else 1,
            start + timedelta(minutes=i),
        )
        for i in range(9_000)
    ]
    rows[10] = (rows[10][0], [1, 0], 1, 0, datetime.now(UTC) + timedelta(days=2))
    rows[11] = (rows[11][0], [1, 0], 1, 0, None)
    rows[4_000] = (rows[4_000][0], [2, 2], 3, -1, None)
    chunks = [rows[i : i + 5_000] for i in range(0, len(rows), 5_000)]
    checked, broken, sample = validate_chunks(chunks)
    assert checked == 9_000
    assert broken == {"resolved_at_not_in_future": 1, "numerator_sum_equals_denominator": 1}
    assert sorted(sample) == [
        (rows[10][0], "resolved_at_not_in_future"),
        (rows[4_000][0], "numerator_sum_equals_denominator"),
    ]
