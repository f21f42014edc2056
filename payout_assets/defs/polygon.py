"""The chain source: ConditionResolution logs, scanned by block range.

``polygon_condition_resolutions`` is partitioned by block range (dynamic partitions named
``FIRST-LAST``, ``POLYGON_RANGE_BLOCKS`` blocks each), so partition status is the scan's
checkpoint and a UI backfill can (re)scan any range. A backfill runs up to ten ranges per run
(``BackfillPolicy.multi_run``): the ~83 ranges of the full history are 9 runs, not 83 start-ups.
Within a range, the scan's own checkpoint (``payout_backfill.polygon_scan_chunks``) lets the
newest, still open range be continued each hour instead of read again.
"""

import warnings

import dagster as dg

from payout_assets.backfill.chain_scan import RangeReport, scan_block_ranges
from payout_assets.defs.metadata import md_table, table_name
from payout_assets.settings import refresh_cron, source_enabled
from payout_assets.sources.polygon.errors import RpcError
from payout_assets.sources.polygon.resource import PolygonResource
from payout_assets.sources.polygon.scan import check_chain, finalized_block
from payout_assets.warehouse import chain, tables
from payout_assets.warehouse.chain import BlockRange, block_ranges
from payout_assets.warehouse.resource import ClickHouseResource

GROUP = "payouts"
OWNERS = ["team:data-platform"]
RANGES_PER_RUN = 10

block_range_partitions = dg.DynamicPartitionsDefinition(name="polygon_block_ranges")


def register_block_ranges(
    instance: dg.DagsterInstance, polygon: PolygonResource, up_to: int
) -> list[str]:
    """Add the partitions that cover the chain up to block ``up_to``; returns every key, oldest
    first. Keys are stable: ranges are aligned to multiples of POLYGON_RANGE_BLOCKS."""
    keys = [r.key for r in block_ranges(polygon.start_block, up_to, polygon.range_blocks)]
    known = set(instance.get_dynamic_partitions(block_range_partitions.name))
    if new := [k for k in keys if k not in known]:
        instance.add_dynamic_partitions(block_range_partitions.name, new)
    return keys


def plan_scan(instance: dg.DagsterInstance, polygon: PolygonResource) -> tuple[list[str], int]:
    """What the hourly schedule and ``payout-backfill run`` scan: the provider's finalized
    block is read, the ranges up to it registered, and of those (oldest first) every range
    never materialised is returned with the newest one that was, which the last scan may have
    left open (it stopped at that run's finalized block); and the finalized block."""
    with polygon.client() as client:
        final, _how = finalized_block(client)
    keys = register_block_ranges(instance, polygon, final.number)
    done = instance.get_materialized_partitions(polygon_condition_resolutions.key)
    scanned = [k for k in keys if k in done]
    return [k for k in keys if k not in done or (scanned and k == scanned[-1])], final.number


def _report_rows(reports: list[RangeReport]) -> list[tuple[object, ...]]:
    return [
        (
            r.block_range.key,
            "-" if r.scanned_from is None else f"{r.scanned_from:,}",
            "-" if r.scanned_to is None else f"{r.scanned_to:,}",
            "yes" if r.complete else "open",
            f"{r.events:,}",
            ", ".join(f"{k}: {v:,}" for k, v in sorted(r.outcomes.items())) or "-",
        )
        for r in reports
    ]


# BackfillPolicy is a beta parameter in Dagster 1.13: its warning would open every command's
# output (the CLI, dagster dev), about Dagster's API rather than anything the user can fix.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy")
    _scan_asset = dg.asset(
        group_name=GROUP,
        owners=OWNERS,
        kinds={"clickhouse", "polygon"},
        partitions_def=block_range_partitions,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=RANGES_PER_RUN),
        description=(
            "ConditionResolution logs of Polymarket's ConditionalTokens contract on Polygon "
            "(POLYGON_CTF_ADDRESS), read with eth_getLogs up to the finalized block, one partition "
            "per block range. Every log becomes a row of payout_backfill.polygon_resolutions with its "
            "block number and hash, transaction hash and log index; numerators stay exact uint256 "
            "text beside the UInt64 columns, and a payout beyond them is rejected with the rule. "
            "resolved_at is the event's block time."
        ),
        metadata=table_name("payout_backfill.polygon_resolutions"),
    )


@_scan_asset
def polygon_condition_resolutions(
    context: dg.AssetExecutionContext,
    clickhouse: ClickHouseResource,
    polygon: PolygonResource,
) -> dg.MaterializeResult:
    store = clickhouse.store()
    tables.ensure_schema(store)
    with polygon.client(context.log) as client:
        try:
            check_chain(client, polygon.ctf_address)
            finalized = finalized_block(client)  # one pin for every range of the run
            reports = scan_block_ranges(
                store,
                client,
                [BlockRange.from_key(key) for key in context.partition_keys],
                context.run.run_id,
                context.log,
                finalized,
            )
        except RpcError as exc:
            raise dg.Failure(f"the Polygon scan failed: {exc}") from None
        requests, retries = client.requests_sent, client.retries
    events = sum(r.events for r in reports)
    return dg.MaterializeResult(
        metadata={
            "dagster/partition_row_count": events,
            "events_found": events,
            "finalized_block": reports[-1].finalized if reports else 0,
            "finality": reports[-1].finality if reports else "-",
            "rpc_requests": requests,
            "rpc_retries": retries,
            "eth_getLogs_range": reports[-1].rpc_range if reports else 0,
            "reorg_rewinds": sum(r.reorg for r in reports),
            "ranges": md_table(
                ["block range", "scanned from", "scanned to", "complete", "events", "rows written"],
                _report_rows(reports),
            ),
        }
    )


@dg.asset_check(
    asset=polygon_condition_resolutions,
    name="scan_covers_every_block_once",
    blocking=True,
    description=(
        "The scan's checkpoints tile each block range from its first block: no gap a resumed or "
        "rewound scan could have left, no block read into the table twice."
    ),
)
def scan_covers_every_block_once(clickhouse: ClickHouseResource) -> dg.AssetCheckResult:
    store = clickhouse.store()
    tables.ensure_schema(store)
    broken = chain.scan_gaps(store)
    return dg.AssetCheckResult(
        passed=not broken,
        description=f"{len(broken)} checkpoints out of place" if broken else "no gap, no overlap",
        metadata={
            "checkpoints_out_of_place": len(broken),
            "sample": md_table(
                ["block range", "chunk first", "chunk last", "previous chunk's last"],
                broken or [("-", "-", "-", "-")],
            ),
        },
    )


scan_polygon = dg.define_asset_job(
    "scan_polygon",
    selection=dg.AssetSelection.assets(polygon_condition_resolutions).without_checks()
    | dg.AssetSelection.checks(scan_covers_every_block_once),
    description="Scan block ranges of Polygon for ConditionResolution logs.",
)


@dg.schedule(
    job=scan_polygon,
    cron_schedule=refresh_cron(),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "Hourly (PAYOUT_REFRESH_CRON): extend the Polygon scan to the new finalized blocks: the "
        "open range is continued from its checkpoint, ranges never scanned are started."
    ),
)
def polygon_hourly_scan(context: dg.ScheduleEvaluationContext, polygon: PolygonResource):
    if not source_enabled("polygon"):
        return dg.SkipReason("PAYOUT_SOURCES does not include polygon")
    keys, finalized = plan_scan(context.instance, polygon)
    return [dg.RunRequest(run_key=f"{key}@{finalized}", partition_key=key) for key in keys]
