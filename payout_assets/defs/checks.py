"""Asset checks: the data-quality dashboard.

The rules live in ``payout_assets/validate/rules.py`` (the pandera ``PayoutRow`` model re-applied
to what was written, plus counts read with FINAL and the ledger), shared with
``payout-backfill verify``. The in-asset validation is what guards the data: a failing blocking
check does not un-checkpoint a partition in Dagster 1.13, so bad rows never get this far; these
checks are what people see, with the offending condition ids as markdown samples.
"""

import warnings
from collections.abc import Iterable, Iterator, Sequence

import dagster as dg

from payout_assets.defs.assets import (
    goldsky_payouts,
    missing_condition_ids,
    resolutions_external_ingest,
    vw_resolutions_truth,
)
from payout_assets.defs.partitions import shard_index
from payout_assets.settings import max_rejected_share
from payout_assets.validate import rules
from payout_assets.validate.rules import Markdown, RuleResult
from payout_assets.warehouse import tables
from payout_assets.warehouse.resource import ClickHouseResource
from payout_assets.warehouse.store import ClickHouseStore


def _metadata_value(value: object) -> object:
    if isinstance(value, Markdown):
        return dg.MetadataValue.md(str(value))
    if isinstance(value, float):
        return dg.MetadataValue.float(value)
    return value


def _results(
    asset: dg.AssetsDefinition, results: Iterable[RuleResult]
) -> Iterator[dg.AssetCheckResult]:
    for result in results:
        yield dg.AssetCheckResult(
            asset_key=asset.key,
            check_name=result.name,
            passed=result.passed,
            severity=dg.AssetCheckSeverity.WARN
            if result.warn_only
            else dg.AssetCheckSeverity.ERROR,
            description=result.summary,
            metadata={k: _metadata_value(v) for k, v in result.metadata.items()},
        )


def _run_slices(
    context: dg.AssetCheckExecutionContext, store: ClickHouseStore, shards: Sequence[str]
) -> list[tables.RunSlice]:
    """The slices of the staging runs a check reads: this run's shard, else every shard."""
    partition = context.run.tags.get("dagster/partition")
    keys = [partition] if partition else shards
    out: list[tables.RunSlice] = []
    for shard in map(shard_index, keys):
        run = tables.shard_run_to_ingest(store, shard, context.run.run_id)
        if run is not None:
            out += tables.run_slices(store, shard, run[0])
    return out


def _spec(
    asset: dg.AssetsDefinition, name: str, description: str, blocking: bool = True
) -> dg.AssetCheckSpec:
    """A check of ``asset``, partitioned as the asset is.

    A shard's check results must be recorded against its shard: Dagster shows a check's latest
    execution on the Checks tab only if it targets the asset's latest materialization, and for
    an unpartitioned check that is the newest materialization of *any* shard. Shard runs run in
    parallel, so the run that recorded its checks last is seldom the one that materialised
    last, and every check showed "Not Evaluated". A partitioned check is compared with its own
    shard's latest materialization instead. (Partitioned checks are a preview in Dagster 1.13;
    their warning is silenced where the specs are built.)"""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        return dg.AssetCheckSpec(
            name,
            asset=asset,
            description=description,
            blocking=blocking,
            partitions_def=asset.partitions_def,
        )


_RULE_SPECS = [
    ("numerator_sums", "Σ numerators = denominator > 0, every value within UInt64."),
    (
        "winning_index_bounds",
        "winning_index is -1 for a split payout, else in bounds and holding the payout.",
    ),
    (
        "resolved_at_not_in_future",
        "resolved_at is NULL (no source timestamp) or not in the future.",
    ),
]


def shard_checks(
    fetch: dg.AssetsDefinition, ingest: dg.AssetsDefinition
) -> tuple[dg.AssetChecksDefinition, dg.AssetChecksDefinition]:
    """The checks of ``goldsky_payouts`` and ``resolutions_external_ingest``, partitioned as
    they are (``assets.shard_assets``)."""
    assert fetch.partitions_def is not None, "goldsky_payouts is partitioned by shard"
    shards = fetch.partitions_def.get_partition_keys()

    @dg.multi_asset_check(
        specs=[
            *(_spec(fetch, name, f"Staged payouts: {what}") for name, what in _RULE_SPECS),
            _spec(fetch, "unique_condition_ids", "Each id asked for has exactly one staged row."),
            _spec(
                fetch,
                "rejected_share",
                "Rejected rows stay below PAYOUT_MAX_REJECTED_SHARE (default 1%).",
            ),
        ],
    )
    def goldsky_payouts_checks(
        context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource
    ) -> Iterator[dg.AssetCheckResult]:
        # One engine session reads the counts and spools the rows; pandera validates them after
        # it, so other shards' writers wait for reads only, never for pandera.
        with clickhouse.held(merges=False) as store:
            slices = _run_slices(context, store, shards)
            counted = rules.staged_rules(store, slices, max_rejected_share())
            rows = rules.spool_payouts(store, slices, staged=True)
        yield from _results(fetch, [*rules.payout_rules(rows), *counted])

    @dg.multi_asset_check(
        specs=[
            *(_spec(ingest, name, f"Ingested (FINAL): {what}") for name, what in _RULE_SPECS),
            _spec(
                ingest,
                "unique_after_dedup",
                "Read with FINAL, every condition appears once.",
            ),
            _spec(
                ingest,
                "canonical_condition_ids",
                "Every condition id in the table is canonical (64 lowercase hex, no 0x).",
            ),
        ],
    )
    def resolutions_external_ingest_checks(
        context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource
    ) -> Iterator[dg.AssetCheckResult]:
        with clickhouse.held(merges=False) as store:  # as for goldsky_payouts' checks
            slices = _run_slices(context, store, shards)
            unique = rules.ingested_unique(store, slices)
            canonical = rules.canonical_ids(store)
            rows = rules.spool_payouts(store, slices)
        yield from _results(ingest, [*rules.payout_rules(rows), unique, canonical])

    return goldsky_payouts_checks, resolutions_external_ingest_checks


goldsky_payouts_checks, resolutions_external_ingest_checks = shard_checks(
    goldsky_payouts, resolutions_external_ingest
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
            "coverage",
            "Resolved and ingested / ids asked for; the original expected 70-80% (WARN outside).",
            blocking=False,
        ),
        _spec(
            vw_resolutions_truth,
            "error_rate",
            "Failed and rejected ids stay below 1% of the ids asked (the original's criterion).",
            blocking=False,
        ),
        _spec(
            vw_resolutions_truth,
            "sources_agree",
            "Conditions where two sources (market_resolutions_final, Polygon, Goldsky) hold "
            "different payouts, from payout_backfill.source_disagreements (WARN, with a sample).",
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
        yield from _results(
            vw_resolutions_truth,
            [
                rules.view_one_row(store),
                rules.view_external_present(store),
                rules.coverage(store),
                rules.error_rate(store, threshold=0.01),
                rules.sources_agree(store),
                rules.ledger_accounts(store, final=True),
            ],
        )


@dg.asset_check(
    asset=missing_condition_ids,
    name="ledger_accounts_for_every_id",
    description="The ledger's states for this snapshot sum to the distinct ids that entered.",
    blocking=True,
)
def missing_condition_ids_ledger(clickhouse: ClickHouseResource) -> dg.AssetCheckResult:
    with clickhouse.held() as store:
        (result,) = _results(missing_condition_ids, [rules.ledger_accounts(store, final=False)])
    return result
