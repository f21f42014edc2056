"""The four assets, in the order a payout travels:

``missing_condition_ids`` → ``goldsky_payouts`` (one partition per shard) →
``resolutions_external_ingest`` → ``vw_resolutions_truth``.

Every asset is a ClickHouse object; the ledger (``payout_backfill.id_ledger``) records the state
of every id that entered, so nothing is lost without a trace.
"""

from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg
from filelock import Timeout

from payout_assets.backfill.shards import (
    ShardFetched,
    ShardNotReady,
    fetch_and_publish,
    prepare_shard,
)
from payout_assets.backfill.snapshot import take_snapshot
from payout_assets.defs.checks import (
    FETCH,
    INGEST,
    Judge,
    fetch_check_specs,
    ingest_check_specs,
    read_ingested,
    read_staged,
    selected_results,
)
from payout_assets.defs.metadata import counts_table, md_table, table_name
from payout_assets.defs.partitions import shard_index, shard_partitions
from payout_assets.defs.polygon import polygon_condition_resolutions
from payout_assets.settings import incremental_enabled
from payout_assets.sources.goldsky.resource import GoldskyResource
from payout_assets.sources.goldsky.shard import ShardFailed
from payout_assets.sources.ids import IdSourceResource
from payout_assets.warehouse import tables
from payout_assets.warehouse.resource import ClickHouseResource
from payout_assets.warehouse.store import ClickHouseStore

GROUP = "payouts"
OWNERS = ["team:data-platform"]


def snapshot_ids(
    context: dg.AssetExecutionContext,
    clickhouse: ClickHouseResource,
    goldsky: GoldskyResource,
    id_source: IdSourceResource,
    shards: int,
) -> dg.MaterializeResult:
    """The ids still missing a payout, split into ``shards``, pinned to one subgraph block."""
    with goldsky.client(context.log) as client:
        report = take_snapshot(
            clickhouse.store(),
            client,
            generation=context.run.run_id,
            shards=shards,
            ids_file=id_source.file(),
            universe_sql=id_source.universe_sql(),
            incremental=incremental_enabled(),
            log=context.log,
        )
    counts, meta, incremental = report.counts, report.meta, report.incremental
    context.log.info(
        f"{report.input_rows:,} input rows → {report.distinct_ids:,} distinct ids: {counts}; "
        f"pinned to block {meta.block_number:,}"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": counts.get("pending", 0),
            "ids_by_state": counts_table(counts),
            "input_rows": report.input_rows,
            "distinct_ids": report.distinct_ids,
            "invalid_ids": counts.get("invalid_id", 0),
            "already_resolved": counts.get("already_resolved", 0),
            "source": report.source,
            "snapshot_block": meta.block_number,
            "subgraph_deployment": meta.deployment,
            "has_indexing_errors": meta.has_indexing_errors,
            "generation": report.generation,
            "incremental": md_table(
                ["", ""], [(k, v) for k, v in incremental.items() if k != "reason"]
            ),
            "requests_saved": int(incremental.get("requests saved", 0)),
            "ids_per_shard": md_table(
                ["shard", "ids"],
                [(f"shard-{s:02d}", f"{n:,}") for s, n in sorted(report.shard_sizes.items())],
            ),
            "invalid_sample": md_table(["input", "reason"], report.invalid_sample or [("-", "-")]),
        }
    )


def fetch_shard(
    context: dg.AssetExecutionContext, clickhouse: ClickHouseResource, goldsky: GoldskyResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """One shard's fetch under the shard's lock, then its checks, whose reads share the
    engine session of the fetch's last write; a failure is recorded in the ledger and raised.
    With only the checks selected (the UI's "Execute checks"), they judge the newest fetch."""
    shard = shard_index(context.partition_key)
    store = clickhouse.store(merges=False)
    checked = _checks_selected(context, FETCH)
    if FETCH not in context.selected_asset_keys:
        yield from selected_results(context, FETCH, read_staged(store, shard, context.run.run_id)())
        return
    shard_lock = clickhouse.shard_lock(store, context.partition_key)
    try:
        shard_lock.acquire(timeout=0)
    except Timeout:
        context.log.info(f"another run of {context.partition_key} is in progress; waiting for it")
        shard_lock.acquire()
    try:
        shards = context.assets_def.partitions_def.get_partition_keys()
        with goldsky.client(context.log) as client:
            prepared = prepare_shard(store, shard, len(shards), client.settings.chunk_ids)
            fetched, judge = fetch_and_publish(
                store,
                client,
                shard,
                context.run.run_id,
                prepared,
                context.log,
                then=lambda: read_staged(store, shard, context.run.run_id) if checked else list,
            )
    except ShardNotReady as exc:
        raise dg.Failure(str(exc)) from None
    except ShardFailed as exc:
        failed = list(exc.condition_ids)
        raise dg.Failure(
            description=f"{context.partition_key} failed: {exc}",
            metadata={
                "error": str(exc),
                "failed_batch_size": len(failed),
                "failed_batch_all_ids": dg.MetadataValue.json(failed),
                "failed_batch_ids": dg.MetadataValue.md(
                    "\n".join(f"- `{c}`" for c in failed[:50])
                    or "(no batch: the shard failed before fetching)"
                ),
            },
        ) from None
    finally:
        shard_lock.release()
    yield dg.MaterializeResult(
        asset_key=FETCH, metadata=shard_metadata(fetched, prepared.snapshot.block_number)
    )
    yield from selected_results(context, FETCH, judge())


def _checks_selected(context: dg.AssetExecutionContext, key: dg.AssetKey) -> bool:
    return any(c.asset_key == key for c in context.selected_asset_check_keys)


def shard_metadata(fetched: ShardFetched, block: int) -> dict[str, Any]:
    """What a shard's materialization shows: its outcomes, requests and rejected sample."""
    progress = fetched.progress
    outcomes = progress.outcomes
    return {
        "dagster/partition_row_count": progress.done_ids,
        "outcomes": counts_table(outcomes, "outcome"),
        "resolved": outcomes.get("resolved", 0),
        "rejected": outcomes.get("rejected", 0),
        "requests": fetched.requests,
        "retries": fetched.retries,
        "batches": progress.batches,
        "snapshot_block": block,
        "seconds": round(progress.elapsed_s, 2),
        "rejected_sample": md_table(
            ["condition_id", "reason"], progress.rejected_sample or [("-", "-")]
        ),
    }


def ingest_shard(
    context: dg.AssetExecutionContext, clickhouse: ClickHouseResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """The shard's newest validated staging run, loaded into the ingest table, then its checks'
    reads in the same engine session (pandera judges the spooled rows after it)."""
    shard = shard_index(context.partition_key)
    metadata: dict[str, Any] | None = None
    judge: Judge = list
    with clickhouse.held(merges=False) as store:
        tables.ensure_schema(store)
        if INGEST in context.selected_asset_keys:
            metadata = _ingest(store, shard, context)
        if _checks_selected(context, INGEST):
            judge = read_ingested(store, shard, context.run.run_id)
    if metadata is not None:
        yield dg.MaterializeResult(asset_key=INGEST, metadata=metadata)
    yield from selected_results(context, INGEST, judge())


def _ingest(
    store: ClickHouseStore, shard: int, context: dg.AssetExecutionContext
) -> dict[str, Any]:
    latest = tables.shard_run_to_ingest(store, shard, context.run.run_id)
    if latest is None:
        raise dg.Failure(
            f"{context.partition_key} has no validated fetch yet: materialise goldsky_payouts "
            f"for {context.partition_key} first"
        )
    run_id, _generation = latest
    tables.ingest_shard(store, shard, run_id)
    superseded = tables.drop_superseded_runs(store, shard, run_id)
    loaded = tables.shard_outcomes(store, shard, run_id).get("resolved", 0)
    return {
        "dagster/partition_row_count": loaded,
        "loaded_rows": loaded,
        "from_fetch_run": run_id,
        "superseded_fetch_runs_dropped": superseded,
    }


def _shard_asset(
    key: dg.AssetKey,
    table: str,
    kinds: set[str],
    upstream: dg.AssetsDefinition | dg.AssetKey,
    description: str,
    partitions: dg.PartitionsDefinition,
    checks: list[dg.AssetCheckSpec],
) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """One shard asset, partitioned by shard, whose checks run in its own step; subsettable,
    so that the UI can run the checks alone."""
    return dg.multi_asset(
        name=key.to_user_string(),
        specs=[
            dg.AssetSpec(
                key,
                group_name=GROUP,
                owners=OWNERS,
                kinds=kinds,
                deps=[upstream],
                description=description,
                metadata=table_name(table),
            )
        ],
        check_specs=checks,
        partitions_def=partitions,
        can_subset=True,
    )


def shard_assets(
    partitions: dg.StaticPartitionsDefinition,
) -> tuple[dg.AssetsDefinition, dg.AssetsDefinition, dg.AssetsDefinition]:
    """``missing_condition_ids`` (split into one shard per partition), ``goldsky_payouts`` and
    ``resolutions_external_ingest`` (one partition per shard) over ``partitions``: the code
    location's shards (PAYOUT_SHARDS), or another count for in-process tests."""
    shards = len(partitions.get_partition_keys())

    @dg.asset(
        group_name=GROUP,
        owners=OWNERS,
        kinds={"clickhouse", "python"},
        description=(
            "Condition ids that still lack a payout vector, each assigned to a worker shard. Ids come "
            "from PAYOUT_IDS_FILE or sql/condition_universe.sql; they are normalised to 64 lowercase hex, "
            "deduplicated, and those already resolved (market_resolutions_final or an earlier ingest) "
            "are dropped. Invalid ids are kept out of every request and recorded in the ledger with a "
            "reason. Also pins the backfill to one subgraph block (a consistent snapshot)."
        ),
        metadata=table_name("payout_backfill.missing_condition_ids"),
    )
    def missing_condition_ids(
        context: dg.AssetExecutionContext,
        clickhouse: ClickHouseResource,
        goldsky: GoldskyResource,
        id_source: IdSourceResource,
    ) -> dg.MaterializeResult:
        return snapshot_ids(context, clickhouse, goldsky, id_source, shards)

    fetch = _shard_asset(
        FETCH,
        "payout_backfill.goldsky_payouts",
        {"clickhouse", "graphql"},
        missing_condition_ids,
        "One shard's payout vectors fetched from the Goldsky subgraph, pinned to the backfill's "
        "snapshot block, in batches of up to 1000 ids with `first` set to the batch size. Every "
        "row is validated (pandera PayoutRow) before it is written to the staging table "
        "payout_backfill.goldsky_payouts; rows that break a rule are staged as `rejected` with "
        "the rule. A failed batch fails the shard with its ids in the failure metadata and "
        "nothing of the run is kept; re-running the shard replaces its rows. Its checks run in "
        "the same step and block the ingest.",
        partitions,
        fetch_check_specs(partitions),
    )(fetch_shard)
    ingest = _shard_asset(
        INGEST,
        "default.resolutions_external_ingest",
        {"clickhouse", "table"},
        FETCH,
        "default.resolutions_external_ingest: resolved payout vectors from Goldsky "
        "(source = 'goldsky'), loaded per shard from the newest validated staging run. "
        "ReplacingMergeTree keyed by condition_id with a version column: the newest fetch wins; "
        "read it with FINAL.",
        partitions,
        ingest_check_specs(partitions),
    )(ingest_shard)
    return missing_condition_ids, fetch, ingest


missing_condition_ids, goldsky_payouts, resolutions_external_ingest = shard_assets(shard_partitions)


@dg.asset(
    group_name=GROUP,
    owners=OWNERS,
    kinds={"clickhouse", "view"},
    deps=[resolutions_external_ingest, polygon_condition_resolutions],
    description=(
        "cascadian_clean.vw_resolutions_truth: one row per resolved condition for P&L. "
        "Precedence: market_resolutions_final, then the chain (polygon), then the subgraph "
        "(goldsky); every table is read with FINAL and LIMIT 1 BY condition_id, so no condition "
        "ever appears twice. payout_backfill.source_disagreements lists where sources differ."
    ),
    metadata=table_name("cascadian_clean.vw_resolutions_truth"),
)
def vw_resolutions_truth(
    context: dg.AssetExecutionContext, clickhouse: ClickHouseResource
) -> dg.MaterializeResult:
    # no background merges in this session: its OPTIMIZE rounds merge what the shards wrote
    with clickhouse.held(merges=False) as store:
        tables.ensure_schema(store)
        parts_before, parts_after = tables.merge_shard_writes(store)
        summary = tables.truth_summary(store)
        total = sum(n for _, n, _ in summary)
        context.log.info(f"vw_resolutions_truth: {total:,} conditions")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": total,
                # counted once per backfill here, not by every shard: a FINAL count reads the
                # whole table, so per shard it cost memory and time that grew with the backfill
                "resolutions_external_ingest_rows": tables.ingest_table_rows(store),
                "shard_write_parts_merged": md_table(
                    ["active parts of the ledger and ingest table", ""],
                    [("before", f"{parts_before:,}"), ("after", f"{parts_after:,}")],
                ),
                "by_source": md_table(
                    ["source", "conditions", "split (winning_index = -1)"],
                    [(s, f"{n:,}", f"{k:,}") for s, n, k in summary] or [("-", 0, 0)],
                ),
            }
        )
