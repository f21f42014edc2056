"""The data-quality rules, once: the asset checks show them in Dagster, and
``payout-backfill verify`` prints them, so the two can never disagree.

They are the original scripts' seven validations, corrected (numerator sums, index bounds and
``resolved_at`` through the pandera model; duplicates read with FINAL; coverage as a warning;
error rate from the ledger; the view one row per condition and complete), plus the ledger check
that every id that entered has exactly one state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from payout_assets.validate.markdown import counts_markdown, markdown_table
from payout_assets.validate.schema import VALIDATE_ROWS, validate_chunks
from payout_assets.warehouse import tables
from payout_assets.warehouse.store import ClickHouseStore

SUM_RULES = {
    "numerator_sum_equals_denominator",
    "denominator_positive_uint64",
    "numerators_fit_uint64",
    "numerator_sum_fits_uint64",
}
INDEX_RULES = {"winning_index_consistent", "at_least_two_outcomes", "at_most_256_outcomes"}
TIME_RULES = {"resolved_at_not_in_future"}
COVERAGE_EXPECTED = (0.70, 0.80)  # the original quick-start's expectation: a WARN, not an error
RunSlices = Sequence[tables.RunSlice]  # the slices of the shard runs a check reads


@dataclass(frozen=True)
class RuleResult:
    name: str
    passed: bool
    summary: str
    warn_only: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "PASS" if self.passed else "WARN" if self.warn_only else "FAIL"


def _spools(
    store: ClickHouseStore, slices: RunSlices | None, staged: bool
) -> list[Iterator[list[tuple]]]:
    if slices is None:
        return [store.spool_file("checks/ingested_all.sql", chunk=VALIDATE_ROWS)]
    sql = "checks/staged_payouts.sql" if staged else "checks/ingested_payouts.sql"
    return [
        store.spool_file(sql, run_slice, VALIDATE_ROWS)
        for run_slice in tables.each_slice(store, slices)
    ]


def spool_payouts(
    store: ClickHouseStore, slices: RunSlices | None, staged: bool = False
) -> Iterator[list[tuple]]:
    """The stored payouts ``payout_rules`` validates, spooled to disk now (in the caller's engine
    session, else in one of their own) and read back a chunk at a time: staged rows of the given
    shard run slices, the ingested rows of their ids (FINAL), or the whole ingest table."""
    with store.session():
        return chain.from_iterable(_spools(store, slices, staged))


def payout_rules(rows: Iterable[list[tuple]]) -> list[RuleResult]:
    """The pandera model over spooled payouts (``spool_payouts``), one chunk in memory at a time.
    Called after the engine session that spooled them has ended, so the embedded engine is free
    for other shards while pandera works."""
    checked, broken, sample = validate_chunks(rows)
    return [
        _rule(name, rules, what, checked, broken, sample)
        for name, rules, what in (
            (
                "numerator_sums",
                SUM_RULES,
                "Σ numerators = denominator > 0, every value fits UInt64",
            ),
            (
                "winning_index_bounds",
                INDEX_RULES,
                "≥ 2 outcomes; winning_index -1 if split, else in bounds and holding the payout",
            ),
            ("resolved_at_not_in_future", TIME_RULES, "resolved_at is NULL or not in the future"),
        )
    ]


def _rule(
    name: str,
    rules: set[str],
    what: str,
    checked: int,
    broken: Counter[str],
    sample: list[tuple[str, str]],
) -> RuleResult:
    failing = sum(n for rule, n in broken.items() if rule in rules)
    rows = [(cid, why) for cid, why in sample if any(r in rules for r in why.split(", "))]
    metadata: dict[str, Any] = {"rule": what, "rows_checked": checked, "rule_violations": failing}
    if rows:
        metadata["failure_sample"] = markdown_table(["condition_id", "rules broken"], rows)
    return RuleResult(
        name, failing == 0, f"{failing:,} of {checked:,} rows break it", metadata=metadata
    )


def staged_rules(
    store: ClickHouseStore, slices: RunSlices, rejected_threshold: float
) -> list[RuleResult]:
    """``unique_condition_ids`` and ``rejected_share`` over the staged rows of the given shard
    run slices, from one pass of counts (checks/staged_counts.sql once per slice)."""
    rows = distinct = rejected = 0
    duplicates: list[tuple[str, int]] = []
    for run_slice in tables.each_slice(store, slices):
        n, d, r = store.query_file("checks/staged_counts.sql", run_slice)[0]
        rows, distinct, rejected = rows + int(n), distinct + int(d), rejected + int(r)
        duplicates += store.query_file("checks/staged_duplicates.sql", run_slice)
    runs = dict.fromkeys((run_slice["shard"], run_slice["run_id"]) for run_slice in slices)
    sample = [
        (cid, reason, f"{list(nums)} / {den or '-'}")
        for shard, run_id in runs
        for cid, reason, nums, den in store.query_file(
            "checks/staged_rejected_sample.sql", {"shard": shard, "run_id": run_id}
        )
    ]
    return [
        _staged_unique(rows, distinct, duplicates),
        _rejected_share(rows, rejected, sample, rejected_threshold),
    ]


def _staged_unique(rows: int, distinct: int, duplicates: list[tuple[str, int]]) -> RuleResult:
    metadata: dict[str, Any] = {"rows": rows, "distinct_ids": distinct}
    if duplicates:
        metadata["duplicate_sample"] = markdown_table(["condition_id", "copies"], duplicates[:20])
    return RuleResult(
        "unique_condition_ids",
        rows == distinct,
        f"{rows:,} rows, {distinct:,} ids",
        metadata=metadata,
    )


def _rejected_share(
    rows: int, rejected: int, sample: list[tuple[str, str, str]], threshold: float
) -> RuleResult:
    share = rejected / rows if rows else 0.0
    metadata: dict[str, Any] = {
        "rejected": rejected,
        "rows": rows,
        "rejected_share": round(share, 6),
        "threshold": threshold,
    }
    if sample:
        metadata["rejected_sample"] = markdown_table(
            ["condition_id", "rule broken", "as received"], sample[:20]
        )
    return RuleResult(
        "rejected_share", share <= threshold, f"{share:.2%} rejected", metadata=metadata
    )


def ingested_unique(store: ClickHouseStore, slices: RunSlices | None) -> RuleResult:
    if slices is None:
        rows, distinct = (int(v) for v in store.query_file("checks/ingested_all_duplicates.sql")[0])
    else:
        rows = distinct = 0
        for run_slice in tables.each_slice(store, slices):
            n, d = store.query_file("checks/ingested_duplicates.sql", run_slice)[0]
            rows, distinct = rows + int(n), distinct + int(d)
    return RuleResult(
        "unique_after_dedup",
        rows == distinct,
        f"{rows:,} rows read with FINAL, {distinct:,} conditions",
        metadata={"rows_final": rows, "distinct_ids": distinct},
    )


def canonical_ids(store: ClickHouseStore) -> RuleResult:
    """Every id in the ingest table is canonical (64 lowercase hex, no ``0x``). The pipeline
    writes only those; a row another writer left under '0xABC…' would be a second key for the
    condition 'abc…', so a second payout. The truth view does not show such rows."""
    rows = store.query_file("checks/noncanonical_ids.sql")
    total = int(rows[0][1]) if rows else 0
    metadata: dict[str, Any] = {"noncanonical_rows": total}
    if rows:
        metadata["failure_sample"] = markdown_table(
            ["condition_id as stored", "why"],
            [(repr(c[:80]), "not 64 lowercase hex digits without 0x") for c, _ in rows],
        )
    return RuleResult(
        "canonical_condition_ids",
        total == 0,
        f"{total:,} ingested rows under a condition id that is not 64 lowercase hex",
        metadata=metadata,
    )


def _ledger(store: ClickHouseStore) -> tuple[tables.Snapshot | None, dict[str, int]]:
    snapshot = tables.current_snapshot(store)
    return snapshot, (tables.state_counts(store, snapshot.generation) if snapshot else {})


def _asked(counts: Mapping[str, int]) -> int:
    return sum(n for s, n in counts.items() if s not in {"invalid_id", "already_resolved"})


def coverage(store: ClickHouseStore) -> RuleResult:
    _, counts = _ledger(store)
    asked = _asked(counts)
    share = counts.get("ingested", 0) / asked if asked else 0.0
    low, high = COVERAGE_EXPECTED
    return RuleResult(
        "coverage",
        low <= share <= high,
        f"{share:.1%} of the {asked:,} ids asked were resolved (expected {low:.0%}-{high:.0%})",
        warn_only=True,
        metadata={
            "coverage": round(share, 4),
            "ingested": counts.get("ingested", 0),
            "asked": asked,
            "expected": f"{low:.0%}-{high:.0%}",
            "ids_by_state": counts_markdown(counts),
        },
    )


def error_rate(store: ClickHouseStore, threshold: float) -> RuleResult:
    _, counts = _ledger(store)
    asked = _asked(counts)
    errors = counts.get("failed", 0) + counts.get("rejected", 0)
    rate = errors / asked if asked else 0.0
    return RuleResult(
        "error_rate",
        rate < threshold or errors == 0,
        f"{errors:,} failed or rejected of {asked:,} asked ({rate:.2%}; limit {threshold:.0%})",
        metadata={
            "failed": counts.get("failed", 0),
            "rejected": counts.get("rejected", 0),
            "error_rate": round(rate, 6),
        },
    )


def view_one_row(store: ClickHouseStore) -> RuleResult:
    if not store.table_exists("cascadian_clean.vw_resolutions_truth"):
        return RuleResult(
            "one_row_per_condition", False, "cascadian_clean.vw_resolutions_truth does not exist"
        )
    rows, distinct = (int(v) for v in store.query_file("checks/truth_duplicates.sql")[0])
    return RuleResult(
        "one_row_per_condition",
        rows == distinct,
        f"{rows:,} rows, {distinct:,} conditions",
        metadata={"rows": rows, "distinct_conditions": distinct},
    )


def view_external_present(store: ClickHouseStore) -> RuleResult:
    missing = int(store.query_file("checks/truth_missing_external_count.sql")[0][0])
    metadata: dict[str, Any] = {"missing_from_view": missing}
    if missing:
        metadata["sample"] = markdown_table(
            ["condition_id"], store.query_file("checks/truth_missing_external.sql")
        )
    return RuleResult(
        "external_rows_present",
        missing == 0,
        f"{missing:,} ingested payouts missing from the view",
        metadata=metadata,
    )


def sources_agree(store: ClickHouseStore) -> RuleResult:
    rows = store.query_file("checks/source_disagreements.sql")
    total = int(rows[0][-1]) if rows else 0
    metadata: dict[str, Any] = {"disagreements": total}
    if rows:
        metadata["sample"] = markdown_table(
            ["condition_id", "source", "payout", "other source", "its payout"],
            [
                (c, a, f"{list(an)}/{ad}", b, f"{list(bn)}/{bd}")
                for c, a, an, ad, b, bn, bd, _ in rows
            ],
        )
    return RuleResult(
        "sources_agree",
        total == 0,
        f"{total:,} {'disagreement' if total == 1 else 'disagreements'} between sources "
        "(payout_backfill.source_disagreements)",
        warn_only=True,
        metadata=metadata,
    )


def ledger_accounts(store: ClickHouseStore, final: bool) -> RuleResult:
    """Every id that entered has exactly one latest state (and, once the backfill is over,
    none is still pending or fetched-but-not-ingested)."""
    snapshot, counts = _ledger(store)
    name = "ledger_accounts_for_every_id"
    if snapshot is None:
        return RuleResult(name, False, "no snapshot yet: materialise missing_condition_ids")
    accounted, unrecorded = (
        int(v)
        for v in store.query_file("checks/ledger_balance.sql", {"generation": snapshot.generation})[
            0
        ]
    )
    still_open = sum(counts.get(s, 0) for s in ("pending", "fetched", "failed")) if final else 0
    passed = accounted == snapshot.distinct_ids and unrecorded == 0 and still_open == 0
    return RuleResult(
        name,
        passed,
        f"{accounted:,} of {snapshot.distinct_ids:,} ids have a state; {still_open:,} still open"
        + (" (pending, fetched or failed: run `payout-backfill run` again)" if still_open else ""),
        metadata={
            "distinct_ids_in": snapshot.distinct_ids,
            "ids_with_a_state": accounted,
            "missing_ids_without_a_state": unrecorded,
            "still_pending_fetched_or_failed": still_open,
            "ids_by_state": counts_markdown(counts),
        },
    )
