"""Asset checks: the data-quality dashboard.

The rules are the pandera ``PayoutRow`` model, re-applied to what was written (the in-asset
validation is what guards the data: a failing blocking check does not un-checkpoint a partition
in Dagster 1.13, so bad rows never get this far; these checks are what people see). Failures
carry a markdown sample with the offending condition ids.
"""

import os
from collections import Counter
from collections.abc import Iterator

import dagster as dg

from payout_assets.defs.assets import (
    goldsky_payouts,
    missing_condition_ids,
    resolutions_external_ingest,
    vw_resolutions_truth,
)
from payout_assets.defs.metadata import counts_table, md_table
from payout_assets.defs.partitions import shard_index, shard_partitions
from payout_assets.resources.clickhouse import ClickHouseResource
from payout_assets.validate.schema import validate_chunks
from payout_assets.write import warehouse
from payout_assets.write.store import ClickHouseStore

SUM_RULES = {
    "numerator_sum_equals_denominator",
    "denominator_positive_uint64",
    "numerators_fit_uint64",
}
INDEX_RULES = {"winning_index_consistent", "at_least_two_outcomes"}
OTHER_RULES_LABEL = "other rules (id format, resolved_at)"
COVERAGE_EXPECTED = (0.70, 0.80)  # the original quick-start's expectation: a WARN, not an error


def max_rejected_share() -> float:
    return float(os.environ.get("PAYOUT_MAX_REJECTED_SHARE", "0.01"))


def _shard_runs(
    context: dg.AssetCheckExecutionContext, store: ClickHouseStore
) -> list[tuple[int, str]]:
    """The (shard, staging run) pairs a check looks at: the run's shard, else every shard."""
    partition = context.run.tags.get("dagster/partition")
    shards = (
        [shard_index(partition)]
        if partition
        else [shard_index(k) for k in shard_partitions.get_partition_keys()]
    )
    out = []
    for shard in shards:
        latest = warehouse.latest_shard_run(store, shard)
        if latest is not None:
            out.append((shard, latest[0]))
    return out


def _chunks(
    store: ClickHouseStore, sql_file: str, runs: list[tuple[int, str]]
) -> Iterator[list[tuple]]:
    for shard, run_id in runs:
        yield from warehouse.iter_rows_chunked(store, sql_file, {"shard": shard, "run_id": run_id})


def _rule_results(
    asset: dg.AssetKey, checked: int, broken: Counter[str], sample: list[tuple[str, str]]
) -> Iterator[dg.AssetCheckResult]:
    for name, rules, what in (
        ("numerator_sums", SUM_RULES, "Σ numerators = denominator > 0, every value fits UInt64"),
        (
            "winning_index_bounds",
            INDEX_RULES,
            "≥ 2 outcomes; winning_index -1 if split, else in bounds and holding the payout",
        ),
    ):
        failing = sum(n for rule, n in broken.items() if rule in rules)
        rows = [(cid, why) for cid, why in sample if any(r in rules for r in why.split(", "))]
        yield dg.AssetCheckResult(
            asset_key=asset,
            check_name=name,
            passed=failing == 0,
            metadata={
                "rule": what,
                "rows_checked": checked,
                "rule_violations": failing,
                **(
                    {"failure_sample": md_table(["condition_id", "rules broken"], rows)}
                    if rows
                    else {}
                ),
            },
        )


def _spec(
    asset: dg.AssetsDefinition, name: str, description: str, blocking: bool = True
) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset, description=description, blocking=blocking)


@dg.multi_asset_check(
    specs=[
        _spec(
            goldsky_payouts,
            "numerator_sums",
            "Staged payouts: Σ numerators = denominator > 0, within UInt64.",
        ),
        _spec(
            goldsky_payouts,
            "winning_index_bounds",
            "Staged payouts: winning_index is -1 for a split payout, else in bounds.",
        ),
        _spec(
            goldsky_payouts, "unique_condition_ids", "Each id asked for has exactly one staged row."
        ),
        _spec(
            goldsky_payouts,
            "rejected_share",
            "Rejected rows stay below PAYOUT_MAX_REJECTED_SHARE (default 1%).",
        ),
    ],
)
def goldsky_payouts_checks(
    context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource
) -> Iterator[dg.AssetCheckResult]:
    with clickhouse.held() as store:
        runs = _shard_runs(context, store)
        asset = goldsky_payouts.key
        checked, broken, sample = validate_chunks(
            _chunks(store, "checks/staged_payouts_chunk.sql", runs)
        )
        yield from _rule_results(asset, checked, broken, sample)

        rows = distinct = rejected = 0
        duplicates: list[tuple[str, int]] = []
        rejected_rows: list[tuple[str, str, str]] = []
        for shard, run_id in runs:
            params = {"shard": shard, "run_id": run_id}
            rejected_rows += [
                (cid, reason, f"{list(nums)} / {den or '-'}")
                for cid, reason, nums, den in store.query_file(
                    "checks/staged_rejected_sample.sql", params
                )
            ]
            n, d, r = store.query_file(
                "checks/staged_counts.sql", {"shard": shard, "run_id": run_id}
            )[0]
            rows, distinct, rejected = rows + int(n), distinct + int(d), rejected + int(r)
            duplicates += store.query_file(
                "checks/staged_duplicates.sql", {"shard": shard, "run_id": run_id}
            )
        yield dg.AssetCheckResult(
            asset_key=asset,
            check_name="unique_condition_ids",
            passed=rows == distinct,
            metadata={
                "rows": rows,
                "distinct_ids": distinct,
                "duplicate_sample": md_table(["condition_id", "copies"], duplicates or [("-", 0)]),
            },
        )
        share = rejected / rows if rows else 0.0
        yield dg.AssetCheckResult(
            asset_key=asset,
            check_name="rejected_share",
            passed=share <= max_rejected_share(),
            metadata={
                "rejected": rejected,
                "rows": rows,
                "rejected_share": dg.MetadataValue.float(round(share, 6)),
                "threshold": max_rejected_share(),
                "rejected_sample": md_table(
                    ["condition_id", "rule broken", "as received"],
                    rejected_rows[:20] or [("-", "-", "-")],
                ),
            },
        )


@dg.multi_asset_check(
    specs=[
        _spec(
            resolutions_external_ingest,
            "numerator_sums",
            "Ingested (FINAL): Σ numerators = denominator > 0.",
        ),
        _spec(
            resolutions_external_ingest,
            "winning_index_bounds",
            "Ingested (FINAL): winning_index consistent with the vector.",
        ),
        _spec(
            resolutions_external_ingest,
            "unique_after_dedup",
            "Read with FINAL, every condition appears once.",
        ),
        _spec(
            resolutions_external_ingest,
            "coverage",
            "Resolved and ingested / ids asked for; the original expected 70-80% (WARN outside).",
            blocking=False,
        ),
    ],
)
def resolutions_external_ingest_checks(
    context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource
) -> Iterator[dg.AssetCheckResult]:
    with clickhouse.held() as store:
        runs = _shard_runs(context, store)
        asset = resolutions_external_ingest.key
        checked, broken, sample = validate_chunks(
            _chunks(store, "checks/ingested_payouts_chunk.sql", runs)
        )
        yield from _rule_results(asset, checked, broken, sample)

        rows = distinct = 0
        for shard, run_id in runs:
            n, d = store.query_file(
                "checks/ingested_duplicates.sql", {"shard": shard, "run_id": run_id}
            )[0]
            rows, distinct = rows + int(n), distinct + int(d)
        yield dg.AssetCheckResult(
            asset_key=asset,
            check_name="unique_after_dedup",
            passed=rows == distinct,
            metadata={"rows_final": rows, "distinct_ids": distinct},
        )

        snapshot = warehouse.current_snapshot(store)
        counts = warehouse.state_counts(store, snapshot.generation) if snapshot else {}
        asked = sum(n for s, n in counts.items() if s not in {"invalid_id", "already_resolved"})
        coverage = counts.get("ingested", 0) / asked if asked else 0.0
        low, high = COVERAGE_EXPECTED
        yield dg.AssetCheckResult(
            asset_key=asset,
            check_name="coverage",
            passed=low <= coverage <= high,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "coverage": dg.MetadataValue.float(round(coverage, 4)),
                "ingested": counts.get("ingested", 0),
                "asked": asked,
                "expected": f"{low:.0%}-{high:.0%}",
                "ids_by_state": counts_table(counts),
            },
        )


@dg.multi_asset_check(
    specs=[
        _spec(vw_resolutions_truth, "one_row_per_condition", "Exactly one row per condition_id."),
        _spec(
            vw_resolutions_truth,
            "external_rows_present",
            "Every valid ingested payout is visible in the view.",
        ),
        _spec(
            vw_resolutions_truth,
            "sources_agree",
            "Conditions where Goldsky and market_resolutions_final disagree (WARN, with a sample).",
            blocking=False,
        ),
        _spec(
            vw_resolutions_truth,
            "ledger_accounts_for_every_id",
            "Every id that entered the backfill has exactly one latest state, and none is left pending.",
            blocking=False,
        ),
    ],
)
def vw_resolutions_truth_checks(clickhouse: ClickHouseResource) -> Iterator[dg.AssetCheckResult]:
    with clickhouse.held() as store:
        asset = vw_resolutions_truth.key
        rows, distinct = store.query_file("checks/truth_duplicates.sql")[0]
        yield dg.AssetCheckResult(
            asset_key=asset,
            check_name="one_row_per_condition",
            passed=rows == distinct,
            metadata={"rows": int(rows), "distinct_conditions": int(distinct)},
        )
        missing = int(store.query_file("checks/truth_missing_external_count.sql")[0][0])
        sample = store.query_file("checks/truth_missing_external.sql")
        yield dg.AssetCheckResult(
            asset_key=asset,
            check_name="external_rows_present",
            passed=missing == 0,
            metadata={
                "missing_from_view": missing,
                "sample": md_table(["condition_id"], sample or [("-",)]),
            },
        )
        disagreements = store.query_file("checks/source_disagreements.sql")
        total = int(disagreements[0][5]) if disagreements else 0
        yield dg.AssetCheckResult(
            asset_key=asset,
            check_name="sources_agree",
            passed=total == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "disagreements": total,
                "sample": md_table(
                    ["condition_id", "market_resolutions_final", "goldsky"],
                    [
                        (c, f"{list(pn)}/{pd}", f"{list(gn)}/{gd}")
                        for c, pn, pd, gn, gd, _ in disagreements
                    ]
                    or [("-", "-", "-")],
                ),
            },
        )
        yield _ledger_result(store, asset, "ledger_accounts_for_every_id", final=True)


@dg.asset_check(
    asset=missing_condition_ids,
    name="ledger_accounts_for_every_id",
    description="The ledger's states for this snapshot sum to the distinct ids that entered.",
    blocking=True,
)
def missing_condition_ids_ledger(clickhouse: ClickHouseResource) -> dg.AssetCheckResult:
    return _ledger_result(
        clickhouse.store(), missing_condition_ids.key, "ledger_accounts_for_every_id", final=False
    )


def _ledger_result(
    store: ClickHouseStore, asset: dg.AssetKey, name: str, final: bool
) -> dg.AssetCheckResult:
    snapshot = warehouse.current_snapshot(store)
    if snapshot is None:
        return dg.AssetCheckResult(
            asset_key=asset, check_name=name, passed=False, metadata={"error": "no snapshot"}
        )
    counts = warehouse.state_counts(store, snapshot.generation)
    accounted, unrecorded = (
        int(v)
        for v in store.query_file("checks/ledger_balance.sql", {"generation": snapshot.generation})[
            0
        ]
    )
    open_states = counts.get("pending", 0) + counts.get("fetched", 0) if final else 0
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=name,
        passed=accounted == snapshot.distinct_ids and unrecorded == 0 and open_states == 0,
        severity=dg.AssetCheckSeverity.WARN if final else dg.AssetCheckSeverity.ERROR,
        metadata={
            "distinct_ids_in": snapshot.distinct_ids,
            "ids_with_a_state": accounted,
            "missing_ids_without_a_state": unrecorded,
            "still_pending_or_fetched": open_states,
            "ids_by_state": counts_table(counts),
        },
    )
