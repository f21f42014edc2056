"""Hostile input is refused alone, with a reason, at a bounded cost: an ids-file line of many
megabytes, payout values beyond what the columns or the parser can hold, condition ids that are
not canonical."""

from __future__ import annotations

import io
from pathlib import Path

import dagster as dg
import httpx
import pytest

from payout_assets.cli.verify import verify
from payout_assets.defs import assets
from payout_assets.sources.goldsky import answers
from payout_assets.sources.goldsky.shard import NON_CANONICAL_REASON, ShardProgress, _Stager
from payout_assets.validate import payouts
from payout_assets.validate.ids import MAX_LINE_BYTES, InvalidId, iter_id_lines
from payout_assets.validate.payouts import (
    PayoutFormatError,
    RawCondition,
    parse_payout,
    winning_index,
)
from payout_assets.validate.rules import INDEX_RULES, SUM_RULES
from payout_assets.validate.schema import rule_failures
from payout_assets.warehouse import tables
from payout_assets.warehouse.resource import ClickHouseResource
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets.warehouse.tables import Snapshot
from payout_assets_tests.conftest import INGEST_COLUMNS, Pipeline, check_results, write_ids
from payout_standins.goldsky import Simulator, SimulatorConfig, run_simulator

pytestmark = pytest.mark.integration


def _ids(sim: Simulator, n: int) -> list[str]:
    return [sim.universe.condition_id(i).removeprefix("0x") for i in range(n)]


# -- item 9: ids-file lines are bounded ---------------------------------------------------------


class _ReadLog(io.BytesIO):
    """A real in-memory file that records the size of every read asked of it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.sizes: list[int | None] = []

    def read(self, size: int | None = -1) -> bytes:
        self.sizes.append(size)
        return super().read(size)


def test_the_line_reader_never_returns_or_reads_a_whole_overlong_line() -> None:
    good = ["a" * 64, "0x" + "B" * 64, " " + "c" * 64 + " \r"]
    long_line = b"d" * (3 * 1024 * 1024)
    data = (good[0] + "\n\n" + good[1] + "\n").encode() + long_line + b"\n" + good[2].encode()
    stream = _ReadLog(data)
    out = list(iter_id_lines(stream, chunk_bytes=4096))

    assert out[:2] == good[:2]
    assert out[3] == good[2].rstrip("\r")  # the last line has no newline; blank lines are skipped
    overlong = out[2]
    assert isinstance(overlong, InvalidId)
    assert overlong.reason == f"line longer than {MAX_LINE_BYTES} bytes ({len(long_line):,} bytes)"
    assert overlong.text == "d" * 80 + "…"
    assert all(len(x if isinstance(x, str) else x.text) <= MAX_LINE_BYTES for x in out)
    # The file was read in fixed-size chunks only, never "the rest" or a whole line.
    assert stream.sizes and all(size == 4096 for size in stream.sizes)


def test_lines_at_the_bound_are_kept_and_one_byte_more_is_not() -> None:
    at_bound = b"e" * MAX_LINE_BYTES
    over = b"f" * (MAX_LINE_BYTES + 1)
    out = list(iter_id_lines(io.BytesIO(at_bound + b"\r\n" + over + b"\r\n"), chunk_bytes=100))
    assert out[0] == at_bound.decode()
    assert isinstance(out[1], InvalidId)
    assert out[1].reason.startswith(f"line longer than {MAX_LINE_BYTES} bytes")


def test_a_multi_megabyte_line_is_recorded_invalid_and_truncated_in_the_ledger(
    pipeline: Pipeline, sim: Simulator, tmp_path: Path
) -> None:
    ids = _ids(sim, 300)
    path = tmp_path / "ids.txt"
    with path.open("wb") as f:
        f.write(("\n".join(ids[:150]) + "\n").encode())
        f.write(b"0x" + b"9" * (4 * 1024 * 1024) + b"\n")
        f.write(("\n".join(ids[150:]) + "\n").encode())
    pipeline.ids_file = path
    pipeline.snapshot()

    store = pipeline.store
    ledger = store.query_rows(
        "SELECT input_id, state, reason FROM payout_backfill.ledger_latest ORDER BY input_id"
    )
    assert max(len(input_id) for input_id, _, _ in ledger) <= MAX_LINE_BYTES
    invalid = [(i, r) for i, s, r in ledger if s == "invalid_id"]
    assert invalid == [
        ("0x" + "9" * 78 + "…", f"line longer than 1024 bytes ({4 * 1024 * 1024 + 2:,} bytes)")
    ]
    assert {i for i, s, _ in ledger if s != "invalid_id"} == set(ids)
    assert len(ledger) == len(ids) + 1


# -- item 5: condition ids are canonical where rows enter and where they are read ---------------


def _ingest_row(cid: str, numerators: list[int], winner: int) -> tuple:
    return (cid, numerators, 1, winner, None, "goldsky", 1, tables.now_utc(), "other-writer", 1)


def test_verify_fails_on_noncanonical_ids_and_the_view_keeps_one_row(
    store: ClickHouseStore, instance: dg.DagsterInstance
) -> None:
    tables.ensure_schema(store)
    cid = "ab" * 32
    spellings = ["0x" + cid.upper(), cid.upper(), " " + cid]
    store.insert(
        "default.resolutions_external_ingest",
        [_ingest_row(cid, [1, 0], 0)] + [_ingest_row(s, [0, 1], 1) for s in spellings],
        INGEST_COLUMNS,
    )
    # The view shows the condition once, under its canonical id, with the canonical row's payout.
    rows = store.query_rows(
        "SELECT condition_id, payout_numerators FROM cascadian_clean.vw_resolutions_truth "
        "WHERE replaceRegexpOne(lower(trim(condition_id)), '^0x', '') = {c:String}",
        {"c": cid},
    )
    assert rows == [(cid, [1, 0])]

    results = {r.name: r for r in verify(store)}
    canonical = results["canonical_condition_ids"]
    assert canonical.status == "FAIL"
    assert canonical.metadata["noncanonical_rows"] == len(spellings)
    assert all(repr(s) in canonical.metadata["failure_sample"] for s in spellings)
    assert canonical.summary.startswith("3 ingested rows")
    assert results["one_row_per_condition"].passed
    assert results["external_rows_present"].passed  # valid canonical rows are all shown

    # The ingest table's asset check runs the same rule.
    evaluation = check_results(
        dg.materialize(
            [assets.resolutions_external_ingest],
            selection=dg.AssetSelection.checks_for_assets(assets.resolutions_external_ingest),
            tags={"dagster/partition": "shard-00"},
            resources={"clickhouse": ClickHouseResource(dsn=store.dsn)},
            instance=instance,
            raise_on_error=False,
        )
    )[("resolutions_external_ingest", "canonical_condition_ids")]
    assert not evaluation.passed
    assert evaluation.metadata["noncanonical_rows"].value == len(spellings)


def test_a_noncanonical_id_is_rejected_before_it_is_staged(store: ClickHouseStore) -> None:
    tables.ensure_schema(store)
    snapshot = Snapshot("gen", 1, "0x00", "dep", False, 8)
    progress = ShardProgress(0, 3)
    stager = _Stager(store, 0, "run-1", snapshot, progress)
    good, upper, prefixed = "cd" * 32, "EF" * 32, "0x" + "12" * 32
    stager.add_batch(
        [good, upper, prefixed],
        [RawCondition(good, ("1", "0"), "1"), RawCondition(upper, ("0", "1"), "1")],
    )
    stager.flush()
    stager.close()
    staged = dict(
        store.query_rows(
            "SELECT condition_id, (outcome, reason) FROM payout_backfill.goldsky_payouts"
        )
    )
    assert staged == {
        good: ("resolved", ""),
        upper: ("rejected", NON_CANONICAL_REASON),
        prefixed: ("rejected", NON_CANONICAL_REASON),
    }


def test_the_ingest_loads_only_canonical_ids_and_records_the_rest_rejected(
    store: ClickHouseStore,
) -> None:
    tables.ensure_schema(store)
    good, bad = "cd" * 32, "0x" + "EF" * 32
    rows = [
        (0, "run-1", "gen", cid, "resolved", "", [1, 0], 1, 0, None, ["1", "0"], "1", 1)
        for cid in (good, bad)
    ]
    tables.stage_rows(store, [(*row, tables.now_utc()) for row in rows])
    tables.ingest_shard(store, 0, "run-1")
    ingested = store.query_rows("SELECT condition_id FROM default.resolutions_external_ingest")
    assert ingested == [(good,)]
    ledger = dict(
        store.query_rows("SELECT input_id, (state, reason) FROM payout_backfill.ledger_latest")
    )
    assert ledger == {good: ("ingested", ""), bad: ("rejected", NON_CANONICAL_REASON)}


# -- item 4: one hostile row is rejected alone, at a bounded cost --------------------------------

CID = "a" * 64
HOSTILE: dict[str, tuple[RawCondition, str]] = {
    "timestamp beyond DateTime": (
        RawCondition(CID, ("1", "0"), "1", resolution_timestamp=str(10**20)),
        "is beyond the DateTime range",
    ),
    "timestamp beyond the platform": (
        RawCondition(CID, ("1", "0"), "1", resolution_timestamp="9" * 78),
        "is beyond the DateTime range",
    ),
    "Infinity share": (
        RawCondition(CID, None, None, payouts=("Infinity", "0")),
        "payout 'Infinity' is not a finite decimal",
    ),
    "NaN share": (
        RawCondition(CID, None, None, payouts=("NaN", "1")),
        "payout 'NaN' is not a finite decimal",
    ),
    "Infinity numerator": (
        RawCondition(CID, ("Infinity", "0"), "1"),
        "payoutNumerator 'Infinity' is not an unsigned integer",
    ),
    "tens of thousands of outcomes": (
        RawCondition(CID, ("0",) * 39_999 + ("1",), "1"),
        "payoutNumerators has 40,000 outcomes; a condition has at most 256",
    ),
    "thousands of digits": (
        RawCondition(CID, ("9" * 5_000, "0"), "9" * 5_000),
        "(5,000 characters) has more than 78 digits",
    ),
    "huge exponent": (
        RawCondition(CID, None, None, payouts=("1e999999999", "0")),
        "payout '1e999999999' has an exponent beyond ±100",
    ),
    "huge negative exponent": (
        RawCondition(CID, None, None, payouts=("1e-999999999", "1")),
        "has an exponent beyond ±100",
    ),
    "overlong decimal": (
        RawCondition(CID, None, None, payouts=("0." + "1" * 5_000, "0")),
        "is longer than 100 characters",
    ),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_each_hostile_value_is_refused_with_a_reason_before_any_conversion(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw, reason = HOSTILE[case]

    def conversion(*args: object) -> object:
        raise AssertionError(f"a hostile value reached a conversion: {str(args)[:80]}")

    real_int = int

    def bounded_int(value: object = 0, *args: object) -> int:
        if isinstance(value, str) and len(value) > payouts.MAX_UINT_DIGITS:
            conversion(value)
        return real_int(value, *args)  # type: ignore[call-overload]

    # Decimal, Fraction and int() of a long string are what cost minutes or raise: the refusal
    # must come first, so none of them ever sees a hostile value.
    monkeypatch.setattr(payouts, "Decimal", conversion)
    monkeypatch.setattr(payouts, "Fraction", conversion)
    monkeypatch.setattr(payouts, "int", bounded_int, raising=False)
    with pytest.raises(PayoutFormatError) as refused:
        parse_payout(raw)
    assert reason in str(refused.value)
    assert len(str(refused.value)) < 200  # the reason quotes the value cut, not whole


def _record(n: int, numerators: list[int], denominator: int) -> dict[str, object]:
    return {
        "condition_id": f"{n:064x}",
        "payout_numerators": numerators,
        "payout_denominator": denominator,
        "winning_index": winning_index(numerators, denominator),
        "resolved_at": None,
    }


def test_the_rules_reject_values_sums_and_lengths_beyond_the_columns() -> None:
    records = [
        _record(0, [1, 0], 1),
        _record(1, [10**5_000, 0], 10**5_000),  # pandera cannot quote it: judged row by row
        _record(2, [2**63, 2**63], 2**64),  # each fits UInt64, their sum does not
        _record(3, [2**64 - 1, 2], 1),  # a sum that wraps around in UInt64 to the denominator
        _record(4, [0] * 299 + [1], 1),  # a winning index beyond what a condition can have
        _record(5, [2, 0], 2),
    ]
    failures = {position: set(rules) for position, rules in rule_failures(records).items()}
    assert failures == {
        1: {"numerators_fit_uint64", "denominator_positive_uint64"},
        2: {"numerator_sum_fits_uint64", "denominator_positive_uint64"},
        3: {"numerator_sum_fits_uint64", "numerator_sum_equals_denominator"},
        4: {"at_most_256_outcomes"},
    }
    assert all(rules <= SUM_RULES | INDEX_RULES for rules in failures.values())


def test_an_answer_with_a_thousand_digit_number_is_read_and_its_row_refused() -> None:
    number = "7" * 5_000
    body = f'{{"data": {{"conditions": [{{"id": "0x{CID}", "payoutNumerators": [{number}, 0], '
    body += '"payoutDenominator": "1"}]}}'
    data = answers.classify(httpx.Response(200, text=body), [CID])
    (row,) = data["conditions"]
    raw = answers.raw_condition(CID, row, [CID])
    with pytest.raises(PayoutFormatError, match="has more than 78 digits"):
        parse_payout(raw)


def test_a_shard_with_hostile_rows_rejects_them_alone_and_ingests_the_rest(
    store: ClickHouseStore,
    instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    with run_simulator(SimulatorConfig(size=2_000, seed=7, dialect="legacy")) as sim:
        ids = _ids(sim, 1_000)
        hostile = {
            ids[1]: ((["1", "0"], "1"), {"resolution_timestamp": str(10**20)}, "DateTime range"),
            ids[2]: ((None, None), {"payouts": ["Infinity", "0"]}, "not a finite decimal"),
            ids[3]: ((["Infinity", "0"], "1"), {}, "not an unsigned integer"),
            ids[4]: ((["0"] * 39_999 + ["1"], "1"), {"payouts": None}, "40,000 outcomes"),
            ids[5]: ((["9" * 5_000, "0"], "9" * 5_000), {"payouts": None}, "more than 78 digits"),
            ids[6]: ((None, None), {"payouts": ["1e999999999", "0"]}, "exponent beyond ±100"),
        }
        for cid, ((numerators, denominator), extra, _) in hostile.items():
            extra = {"resolution_timestamp": "1700000000", **extra}
            sim.universe.set_override("0x" + cid, numerators, denominator, **extra)
        pipeline = Pipeline(
            store=store,
            endpoint=sim.url,
            instance=instance,
            ids_file=write_ids(tmp_path / "ids.txt", ids),
            goldsky_overrides={"dialect": "legacy"},
            shards=1,
        )
        pipeline.snapshot()
        result = pipeline.shard("shard-00")
        assert result.success
        block = tables.current_snapshot(store).block_number
        resolved = {
            cid
            for cid in ids
            if cid not in hostile
            and (state := sim.universe.state("0x" + cid, block)) is not None
            and state.resolved
        }

    states = dict(
        store.query_rows("SELECT input_id, (state, reason) FROM payout_backfill.ledger_latest")
    )
    for cid, (_, _, reason) in hostile.items():
        state, why = states[cid]
        assert state == "rejected" and reason in why, (cid, states[cid])
        assert len(why) < 200
    ingested = {r[0] for r in store.query_rows(INGESTED)}
    assert resolved and ingested == resolved
    assert {s for c, (s, _) in states.items() if c not in hostile} <= {"ingested", "unresolved"}
    evaluation = check_results(result)[("goldsky_payouts", "rejected_share")]
    assert evaluation.passed and evaluation.metadata["rejected"].value == len(hostile)


INGESTED = "SELECT condition_id FROM default.resolutions_external_ingest FINAL"
