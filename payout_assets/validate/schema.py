"""The pandera model of a payout row: the one definition of "a valid payout".

It is used twice: inside ``goldsky_payouts`` on every batch before anything is written (rows that
fail go to the ledger as ``rejected`` with the failing rule, the rest go on), and inside the asset
checks that re-read what was written. Values are Python ints in ``object`` columns so that a
uint256 from the chain is compared exactly and rejected when it does not fit the UInt64 columns,
never wrapped around by numpy.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime

import pandas as pd
import pandera.pandas as pa

from payout_assets.validate.payouts import MAX_OUTCOMES, UINT64_MAX, winning_index

COLUMNS = [
    "condition_id",
    "payout_numerators",
    "payout_denominator",
    "winning_index",
    "resolved_at",
]


def _ints(value: object) -> list[int]:
    return list(map(int, value))  # type: ignore[call-overload]


# Each rule as a plain predicate of one row's values. The pandera checks below apply them to
# whole columns in one pass each, and ``failures_by_row`` applies them row by row when pandera
# reports a check without the rows it failed on: pandera quotes failing values with ``str()``,
# which raises for an integer of more than 4,300 digits, and the check then comes back as an
# error with no row index.
def _fit(numerators: list[int]) -> bool:
    return all(0 <= n <= UINT64_MAX for n in numerators)


def _numerators_fit_uint64(numerators: object) -> bool:
    return _fit(_ints(numerators))


def _sum_fits_uint64(numerators: object) -> bool:
    """Σ numerators within UInt64 (judged only when each numerator fits: otherwise that rule
    is the reason)."""
    values = _ints(numerators)
    return not _fit(values) or sum(values) <= UINT64_MAX


def _denominator_positive_uint64(denominator: object) -> bool:
    return 0 < int(denominator) <= UINT64_MAX  # type: ignore[call-overload]


def _sum_equals_denominator(numerators: object, denominator: object) -> bool:
    return sum(_ints(numerators)) == int(denominator)  # type: ignore[call-overload]


def _winning_index_consistent(numerators: object, denominator: object, index: object) -> bool:
    """-1 for a split payout, else in bounds and holding the whole payout."""
    n = _ints(numerators)
    d = int(denominator)  # type: ignore[call-overload]
    w = int(index)  # type: ignore[call-overload]
    return w == winning_index(n, d) and (w == -1 or (0 <= w < len(n) and n[w] == d))


# rule name -> (the columns it reads, its predicate of those values)
RULES: dict[str, tuple[tuple[str, ...], Callable[..., bool]]] = {
    "at_least_two_outcomes": (("payout_numerators",), lambda n: len(_ints(n)) >= 2),
    # the ConditionalTokens limit; also what keeps winning_index within its Int16
    "at_most_256_outcomes": (("payout_numerators",), lambda n: len(_ints(n)) <= MAX_OUTCOMES),
    "numerators_fit_uint64": (("payout_numerators",), _numerators_fit_uint64),
    "numerator_sum_fits_uint64": (("payout_numerators",), _sum_fits_uint64),
    "denominator_positive_uint64": (("payout_denominator",), _denominator_positive_uint64),
    "numerator_sum_equals_denominator": (
        ("payout_numerators", "payout_denominator"),
        _sum_equals_denominator,
    ),
    "winning_index_consistent": (
        ("payout_numerators", "payout_denominator", "winning_index"),
        _winning_index_consistent,
    ),
}


def _judged(rule: str, frame: pd.DataFrame) -> list[bool]:
    """``rule`` applied to each row of ``frame``, in one pass over the columns it reads."""
    columns, predicate = RULES[rule]
    return list(map(predicate, *(frame[c] for c in columns)))


def _rule_check(rule: str) -> pa.Check:
    """``rule`` as a pandera check of the whole frame, judged in one pass over its rows."""

    def judge(df: pd.DataFrame) -> pd.Series:
        return pd.Series(_judged(rule, df), index=df.index, dtype=bool)

    return pa.Check(judge, name=rule)


def _not_in_future(resolved_at: pd.Series) -> pd.Series:
    return resolved_at.isna() | (resolved_at <= pd.Timestamp(datetime.now(UTC)))


# A resolved condition's payout vector, as stored in ``resolutions_external_ingest``.
PayoutRow = pa.DataFrameSchema(
    {
        "condition_id": pa.Column(str, checks=pa.Check.str_matches(r"^[0-9a-f]{64}$"), unique=True),
        "payout_numerators": pa.Column(object),
        "payout_denominator": pa.Column(object),
        "winning_index": pa.Column(int),
        "resolved_at": pa.Column(
            pd.DatetimeTZDtype(unit="ns", tz="UTC"),
            checks=pa.Check(_not_in_future, name="resolved_at_not_in_future"),
            nullable=True,
        ),
    },
    checks=[_rule_check(rule) for rule in RULES],
    name="PayoutRow",
    strict="filter",
    coerce=True,
)


def payout_frame(records: list[dict[str, object]]) -> pd.DataFrame:
    """A DataFrame in the model's column layout (object columns keep Python ints exact)."""
    frame = pd.DataFrame.from_records(records, columns=COLUMNS)
    for column in ("payout_numerators", "payout_denominator"):
        frame[column] = frame[column].astype(object)
    frame["resolved_at"] = pd.to_datetime(frame["resolved_at"], utc=True)
    return frame


def failures_by_row(frame: pd.DataFrame) -> dict[int, list[str]]:
    """Row position → the names of the rules it breaks (empty dict when all rows are valid).

    A check pandera reports without row indexes (it failed while quoting the values) is judged
    here row by row with its plain predicate; one that has none fails every row of the frame,
    so a row is never let through because its rule could not say which row it was."""
    try:
        PayoutRow.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        reasons: dict[int, list[str]] = defaultdict(list)
        cases = errors.failure_cases
        for index, check in zip(cases["index"], cases["check"], strict=True):
            if index is None or pd.isna(index):
                for position in _unindexed_failures(frame, str(check)):
                    if str(check) not in reasons[position]:
                        reasons[position].append(str(check))
                continue
            rule = str(check)
            if rule in {"field_uniqueness", "unique"} or rule.startswith("field_uniqueness"):
                rule = "duplicate_condition_id"
            elif rule.startswith("str_matches"):
                rule = "condition_id_not_64_hex"
            if rule not in reasons[int(index)]:
                reasons[int(index)].append(rule)
        return dict(reasons)
    return {}


def _unindexed_failures(frame: pd.DataFrame, check: str) -> list[int]:
    """Positions of the rows that break ``check`` (all of them for a check with no predicate)."""
    if check not in RULES:
        return list(range(len(frame)))
    return [position for position, passed in enumerate(_judged(check, frame)) if not passed]


VALIDATE_ROWS = 5_000  # rows per pandera frame: bounds the heap a validation adds


def rule_failures(records: Sequence[Mapping[str, object]]) -> dict[int, list[str]]:
    """``failures_by_row`` over any number of records, one frame of ``VALIDATE_ROWS`` at a time
    (so memory does not follow the batch size). Keys are positions in ``records``."""
    out: dict[int, list[str]] = {}
    for start in range(0, len(records), VALIDATE_ROWS):
        frame = payout_frame(list(records[start : start + VALIDATE_ROWS]))
        for position, rules in failures_by_row(frame).items():
            out[start + position] = rules
        del frame
    return out


def vector_failures(rows: Sequence[tuple[object, ...]]) -> dict[int, list[str]]:
    """Row position → the rules it breaks, as ``rule_failures`` judges them, for rows of
    ``(condition_id, numerators, denominator, winning_index, resolved_at)``.

    The payout rules read only a row's vector, and "not in the future" holds for every row when
    it holds for the latest ``resolved_at``; so the model judges each distinct vector once, in
    its row with the latest ``resolved_at``, and row by row only the rows of a vector that
    fails, for exact reasons. Payouts share a handful of vectors. A condition id's own rules
    (64 hex digits, once each) are judged where ids enter: the snapshot normalises and
    deduplicates them, the shard refuses a non-canonical one, the checks count both in SQL.
    """
    groups: dict[tuple[object, ...], list[int]] = defaultdict(list)
    for position, row in enumerate(rows):
        groups[(tuple(row[1]), row[2], row[3])].append(position)  # type: ignore[call-overload]
    members = list(groups.values())
    latest = [max(positions, key=lambda p: _latest(rows[p])) for positions in members]
    out: dict[int, list[str]] = {}
    for group in rule_failures([_record(rows[p]) for p in latest]):
        positions = members[group]
        for index, rules in rule_failures([_record(rows[p]) for p in positions]).items():
            out[positions[index]] = rules
    return out


def validate_chunks(
    chunks: Iterable[list[tuple[object, ...]]], sample: int = 20
) -> tuple[int, Counter[str], list[tuple[str, str]]]:
    """Validate stored rows chunk by chunk (one chunk in memory at a time), with
    ``vector_failures``. Returns (rows checked, rows failing each rule, a sample of
    (condition_id, rules))."""
    checked = 0
    broken: Counter[str] = Counter()
    failing: list[tuple[str, str]] = []
    for chunk in chunks:
        checked += len(chunk)
        for position, rules in vector_failures(chunk).items():
            broken.update(rules)
            if len(failing) < sample:
                failing.append((str(chunk[position][0]), ", ".join(rules)))
    return checked, broken, failing


def _record(row: tuple[object, ...]) -> dict[str, object]:
    return dict(zip(COLUMNS, row, strict=True))


def _latest(row: tuple[object, ...]) -> tuple[bool, object]:
    """Orders rows by ``resolved_at``, a missing one first."""
    return (True, row[4]) if row[4] is not None else (False, 0)
