"""Asset checks: the data-quality dashboard.

The rules live in ``payout_assets/validate/rules.py`` (the pandera ``PayoutRow`` model re-applied
to what was written, plus counts read with FINAL and the ledger), shared with
``payout-backfill verify``. The two shard assets evaluate their checks in their own steps, whose
engine session their reads share (``assets.fetch_shard``, ``assets.ingest_shard``); the UI can
still run them alone. The in-asset validation is what guards the data: a failing blocking
check does not un-checkpoint a partition in Dagster 1.13, so bad rows never get this far; these
checks are what people see, with the offending condition ids as markdown samples.
"""

import warnings
from collections.abc import Callable, Iterable, Iterator

import dagster as dg

from payout_assets.settings import max_rejected_share
from payout_assets.validate import rules
from payout_assets.validate.markdown import Markdown
from payout_assets.validate.rules import RuleResult
from payout_assets.warehouse import tables
from payout_assets.warehouse.resource import ClickHouseResource
from payout_assets.warehouse.store import ClickHouseStore

# The checked assets, by key: the assets module builds the shard assets with these checks.
SNAPSHOT = dg.AssetKey("missing_condition_ids")
FETCH = dg.AssetKey("goldsky_payouts")
INGEST = dg.AssetKey("resolutions_external_ingest")
VIEW = dg.AssetKey("vw_resolutions_truth")


def _metadata_value(value: object) -> object:
    if isinstance(value, Markdown):
        return dg.MetadataValue.md(str(value))
    if isinstance(value, float):
        return dg.MetadataValue.float(value)
    return value


def check_results(key: dg.AssetKey, results: Iterable[RuleResult]) -> Iterator[dg.AssetCheckResult]:
    """Rule results as the Checks tab shows them: a failed rule is an ERROR unless it only warns."""
    for result in results:
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=result.name,
            passed=result.passed,
            severity=dg.AssetCheckSeverity.WARN
            if result.warn_only
            else dg.AssetCheckSeverity.ERROR,
            description=result.summary,
            metadata={k: _metadata_value(v) for k, v in result.metadata.items()},
        )


def _spec(
    key: dg.AssetKey,
    name: str,
    description: str,
    partitions: dg.PartitionsDefinition | None = None,
    blocking: bool = True,
) -> dg.AssetCheckSpec:
    """A check of ``key``, partitioned as the asset is.

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
            name, asset=key, description=description, blocking=blocking, partitions_def=partitions
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


def fetch_check_specs(partitions: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    """The checks of ``goldsky_payouts``, evaluated in its own step (``assets.fetch_shard``)."""
    return [
        *(_spec(FETCH, name, f"Staged payouts: {what}", partitions) for name, what in _RULE_SPECS),
        _spec(
            FETCH,
            "unique_condition_ids",
            "Each id asked for has exactly one staged row.",
            partitions,
        ),
        _spec(
            FETCH,
            "rejected_share",
            "Rejected rows stay below PAYOUT_MAX_REJECTED_SHARE (default 1%).",
            partitions,
        ),
    ]


def ingest_check_specs(partitions: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    """The checks of ``resolutions_external_ingest``, evaluated in its own step."""
    return [
        *(
            _spec(INGEST, name, f"Ingested (FINAL): {what}", partitions)
            for name, what in _RULE_SPECS
        ),
        _spec(
            INGEST,
            "unique_after_dedup",
            "Read with FINAL, every condition appears once.",
            partitions,
        ),
        _spec(
            INGEST,
            "canonical_condition_ids",
            "Every condition id in the table is canonical (64 lowercase hex, no 0x).",
            partitions,
        ),
    ]


Judge = Callable[[], list[RuleResult]]


def read_staged(store: ClickHouseStore, shard: int, run_id: str) -> Judge:
    """Read what ``goldsky_payouts``' checks need of the shard's fetch (this run's, else the
    newest published) in the caller's engine session; the returned call runs pandera over the
    spooled rows after that session, so other shards' writers wait for reads only."""
    with store.session():
        slices = _run_slices(store, shard, run_id)
        counted = rules.staged_rules(store, slices, max_rejected_share())
        rows = rules.spool_payouts(store, slices, staged=True)
    return lambda: [*rules.payout_rules(rows), *counted]


def read_ingested(store: ClickHouseStore, shard: int, run_id: str) -> Judge:
    """As ``read_staged``, for ``resolutions_external_ingest``'s checks."""
    with store.session():
        slices = _run_slices(store, shard, run_id)
        unique = rules.ingested_unique(store, slices)
        canonical = rules.canonical_ids(store)
        rows = rules.spool_payouts(store, slices)
    return lambda: [*rules.payout_rules(rows), unique, canonical]


def _run_slices(store: ClickHouseStore, shard: int, run_id: str) -> list[tables.RunSlice]:
    run = tables.shard_run_to_ingest(store, shard, run_id)
    return [] if run is None else tables.run_slices(store, shard, run[0])


def selected_results(
    context: dg.AssetExecutionContext, key: dg.AssetKey, results: Iterable[RuleResult]
) -> Iterator[dg.AssetCheckResult]:
    """The results of the checks of ``key`` that the run selected (all, unless the UI or a
    selection asked for some)."""
    wanted = {c.name for c in context.selected_asset_check_keys if c.asset_key == key}
    yield from check_results(key, (r for r in results if r.name in wanted))


@dg.multi_asset_check(
    specs=[
        _spec(VIEW, "one_row_per_condition", "Exactly one row per condition_id."),
        _spec(
            VIEW,
            "external_rows_present",
            "Every valid ingested payout is visible in the view.",
        ),
        _spec(
            VIEW,
            "coverage",
            "Resolved and ingested / ids asked for; the original expected 70-80% (WARN outside).",
            blocking=False,
        ),
        _spec(
            VIEW,
            "error_rate",
            "Failed and rejected ids stay below 1% of the ids asked (the original's criterion).",
            blocking=False,
        ),
        _spec(
            VIEW,
            "sources_agree",
            "Conditions where two sources (market_resolutions_final, Polygon, Goldsky) hold "
            "different payouts, from payout_backfill.source_disagreements (WARN, with a sample).",
            blocking=False,
        ),
        _spec(
            VIEW,
            "ledger_accounts_for_every_id",
            "Every id that entered the backfill has exactly one latest state, and none is left pending.",
            blocking=False,
        ),
    ],
)
def vw_resolutions_truth_checks(clickhouse: ClickHouseResource) -> Iterator[dg.AssetCheckResult]:
    with clickhouse.held() as store:
        yield from check_results(
            VIEW,
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
    asset=SNAPSHOT,
    name="ledger_accounts_for_every_id",
    description="The ledger's states for this snapshot sum to the distinct ids that entered.",
    blocking=True,
)
def missing_condition_ids_ledger(clickhouse: ClickHouseResource) -> dg.AssetCheckResult:
    with clickhouse.held() as store:
        (result,) = check_results(SNAPSHOT, [rules.ledger_accounts(store, final=False)])
    return result
