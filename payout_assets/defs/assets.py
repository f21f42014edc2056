"""The four assets, in the order a payout travels:

``missing_condition_ids`` → ``goldsky_payouts`` (one partition per shard) →
``resolutions_external_ingest`` → ``vw_resolutions_truth``.

Every asset is a ClickHouse object; the ledger (``payout_backfill.id_ledger``) records the state
of every id that entered, so nothing is lost without a trace.
"""

import dataclasses
import os
import sys
import warnings
from typing import Any, NoReturn

import dagster as dg
from filelock import Timeout

from payout_assets.config import shard_count
from payout_assets.defs.metadata import counts_table, md_table, table_name
from payout_assets.defs.partitions import shard_index, shard_partitions
from payout_assets.sources.goldsky import worker
from payout_assets.sources.goldsky.errors import PermanentGoldskyError
from payout_assets.sources.goldsky.resource import GoldskyResource
from payout_assets.sources.ids import IdSourceResource
from payout_assets.validate.ids import InvalidId, iter_id_lines, normalize_condition_id
from payout_assets.warehouse import tables
from payout_assets.warehouse.resource import ClickHouseResource
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets.warehouse.tables import Snapshot

GROUP = "payouts"
OWNERS = ["team:data-platform"]
INPUT_CHUNK = 50_000


def _load_input(
    store: ClickHouseStore, id_source: IdSourceResource, generation: str, names: dict[str, str]
) -> tuple[str, int]:
    """Copy the candidate ids into ``payout_backfill.id_input``; returns where they came from
    and how many lines were too long to be ids.

    Lines of the ids file are read with a bound (``iter_id_lines``): an overlong one goes
    straight to the candidates as an invalid id, truncated, with the reason."""
    path = id_source.file()
    if path is None:
        tables.load_universe(store, generation, id_source.universe_sql())
        return "sql/condition_universe.sql", 0
    chunk: list[str] = []
    overlong: list[tuple[str, str]] = []
    overlong_lines = 0
    with path.open("rb") as stream:
        for line in iter_id_lines(stream):
            if isinstance(line, InvalidId):
                overlong.append((line.text, line.reason))
                overlong_lines += 1
            else:
                chunk.append(line)
            if len(chunk) >= INPUT_CHUNK:
                tables.load_input_lines(store, generation, chunk)
                chunk = []
            if len(overlong) >= INPUT_CHUNK:
                tables.add_candidates(store, names, overlong)
                overlong = []
    tables.load_input_lines(store, generation, chunk)
    tables.add_candidates(store, names, overlong)
    return str(path), overlong_lines


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
    store = clickhouse.store()
    tables.ensure_schema(store)
    generation = context.run.run_id
    shards = shard_count()
    previous = tables.current_snapshot(store)
    with goldsky.client(context.log) as client:
        meta = client.meta()
    if meta.has_indexing_errors:
        context.log.warning(
            "the subgraph reports hasIndexingErrors=true: some conditions may be missing from it"
        )

    names = tables.scratch_names(generation)
    with store.session():
        tables.create_candidates(store, names)
        source, overlong_lines = _load_input(store, id_source, generation, names)
        lines = tables.input_count(store, generation) + overlong_lines
        invalid_sample: list[tuple[str, str]] = []
        for chunk in tables.iter_input_chunks(store, generation):
            candidates = [
                (n.text, n.reason) if isinstance(n, InvalidId) else (n, "")
                for n in map(normalize_condition_id, chunk)
            ]
            tables.add_candidates(store, names, candidates)
            invalid_sample += [(t[:80], r) for t, r in candidates if r][: 10 - len(invalid_sample)]
    incremental = _skip_unchanged(
        context, store, goldsky, names, previous, meta.block_number, meta.deployment
    )
    with store.session():
        distinct = tables.build_missing(
            store,
            names,
            generation,
            context.run.run_id,
            shards,
            unchanged_reason=incremental.get("reason", ""),
        )
        tables.record_snapshot(
            store,
            Snapshot(
                generation,
                meta.block_number,
                meta.block_hash,
                meta.deployment,
                meta.has_indexing_errors,
                shards,
                lines,
                distinct,
            ),
        )
        tables.publish_missing(store, names, generation)
        counts = tables.state_counts(store, generation)
        sizes = tables.shard_sizes(store)
    to_fetch = counts.get("pending", 0)
    context.log.info(
        f"{lines:,} input rows → {sum(counts.values()):,} distinct ids: {counts}; "
        f"pinned to block {meta.block_number:,}"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": to_fetch,
            "ids_by_state": counts_table(counts),
            "input_rows": lines,
            "distinct_ids": sum(counts.values()),
            "invalid_ids": counts.get("invalid_id", 0),
            "already_resolved": counts.get("already_resolved", 0),
            "source": source,
            "snapshot_block": meta.block_number,
            "subgraph_deployment": meta.deployment,
            "has_indexing_errors": meta.has_indexing_errors,
            "generation": generation,
            "incremental": md_table(
                ["", ""], [(k, v) for k, v in incremental.items() if k != "reason"]
            ),
            "requests_saved": int(incremental.get("requests saved", 0)),
            "ids_per_shard": md_table(
                ["shard", "ids"], [(f"shard-{s:02d}", f"{n:,}") for s, n in sorted(sizes.items())]
            ),
            "invalid_sample": md_table(["input", "reason"], invalid_sample or [("-", "-")]),
        }
    )


def _skip_unchanged(
    context: dg.AssetExecutionContext,
    store: ClickHouseStore,
    goldsky: GoldskyResource,
    names: dict[str, str],
    previous: Snapshot | None,
    block: int,
    deployment: str,
) -> dict[str, str]:
    """Incremental refresh: ask the subgraph which conditions changed since the previous
    snapshot's block (``_change_block``), and do not ask again for ids that were unresolved or
    absent then and have not changed since. Falls back to asking for every id when there is no
    previous snapshot, the previous one is not comparable (``_incomparable``) or the endpoint
    rejects the filter. Returns what it did, for the metadata."""
    if previous is None or os.environ.get("PAYOUT_INCREMENTAL", "1") == "0":
        return {
            "mode": "full (no previous snapshot)"
            if previous is None
            else "full (PAYOUT_INCREMENTAL=0)"
        }
    incomparable = _incomparable(previous, block, deployment)
    if incomparable:
        context.log.warning(f"asking for every id again, not only the changed ones: {incomparable}")
        return {"mode": "full (previous snapshot not comparable)", "full because": incomparable}
    changed = 0
    try:
        with goldsky.client(context.log) as client:
            chunk: list[str] = []
            for cid in client.changed_since(previous.block_number, block):
                chunk.append(cid)
                if len(chunk) >= INPUT_CHUNK:
                    tables.add_changed(store, names, chunk)
                    changed, chunk = changed + len(chunk), []
            tables.add_changed(store, names, chunk)
            changed += len(chunk)
            pages = client.requests_sent
    except PermanentGoldskyError as exc:
        context.log.warning(
            f"the subgraph rejected the _change_block filter ({exc}); asking for every id"
        )
        return {"mode": "full (endpoint rejected _change_block)"}
    skipped = tables.mark_unchanged(store, names, previous.generation)
    batch = goldsky.batch_size
    saved = max(0, -(-skipped // batch) - pages)
    context.log.info(
        f"incremental: {changed:,} conditions changed since block {previous.block_number:,}; "
        f"{skipped:,} unresolved ids unchanged, not asked again (~{saved} requests saved)"
    )
    return {
        "mode": f"incremental since block {previous.block_number:,}",
        "changed conditions": f"{changed:,}",
        "ids not asked again (unchanged)": f"{skipped:,}",
        "change-query pages": str(pages),
        "requests saved": str(saved),
        "reason": f"unchanged since block {previous.block_number} (incremental refresh)",
    }


def _incomparable(previous: Snapshot, block: int, deployment: str) -> str:
    """Why the previous snapshot's answers say nothing about this one ('' when they do).

    "Unchanged since block N" holds only on the deployment that answered at N and only when
    N is not ahead of this snapshot: another deployment (a new subgraph version, a resync, another
    endpoint) has its own history, and a lower block means a reorg or a deployment behind the
    last one, where ``_change_block`` since N finds nothing and every id would look unchanged."""
    if deployment != previous.deployment:
        return (
            f"the subgraph deployment changed from {previous.deployment or '(none reported)'} "
            f"to {deployment or '(none reported)'}"
        )
    if block < previous.block_number:
        return (
            f"the subgraph is at block {block:,}, lower than the previous snapshot's "
            f"{previous.block_number:,}"
        )
    return ""


@dg.asset(
    group_name=GROUP,
    owners=OWNERS,
    kinds={"clickhouse", "graphql"},
    partitions_def=shard_partitions,
    deps=[missing_condition_ids],
    description=(
        "One shard's payout vectors fetched from the Goldsky subgraph, pinned to the backfill's "
        "snapshot block, in batches of up to 1000 ids with `first` set to the batch size. Every "
        "row is validated (pandera PayoutRow) before it is written to the staging table "
        "payout_backfill.goldsky_payouts; rows that break a rule are staged as `rejected` with the "
        "rule. A failed batch fails the shard with its ids in the failure metadata and nothing "
        "of the run is kept; re-running the shard replaces its rows. The fetch runs in a "
        "Dagster Pipes worker process without Dagster (payout_assets/sources/goldsky/worker.py)."
    ),
    metadata=table_name("payout_backfill.goldsky_payouts"),
)
def goldsky_payouts(
    context: dg.AssetExecutionContext,
    clickhouse: ClickHouseResource,
    goldsky: GoldskyResource,
    pipes_subprocess_client: dg.PipesSubprocessClient,
) -> dg.MaterializeResult:
    shard = shard_index(context.partition_key)
    store = clickhouse.store(merges=False)
    shard_lock = store.named_lock(context.partition_key)
    try:
        shard_lock.acquire(timeout=0)
    except Timeout:
        context.log.info(f"another run of {context.partition_key} is in progress; waiting for it")
        shard_lock.acquire()
    try:
        return _fetch_shard(context, clickhouse, store, goldsky, pipes_subprocess_client, shard)
    finally:
        shard_lock.release()


def _fetch_shard(
    context: dg.AssetExecutionContext,
    clickhouse: ClickHouseResource,
    store: ClickHouseStore,
    goldsky: GoldskyResource,
    pipes_client: dg.PipesSubprocessClient,
    shard: int,
) -> dg.MaterializeResult:
    """The body of ``goldsky_payouts``, run while holding the shard's lock: no other run of this
    shard is alive, so staging partitions nobody published are debris of a killed run, and the
    snapshot read here is the newest one (a backfill started meanwhile is not missed).

    The fetch itself runs in ``payout_assets.sources.goldsky.worker``, a process without Dagster (see there
    why); this step records its failure, whether the worker reported one or died."""
    with store.session():
        tables.ensure_schema(store)
        snapshot = tables.current_snapshot(store)
        tables.drop_orphan_runs(store, shard)
    if snapshot is None:
        raise dg.Failure("no backfill snapshot yet: materialise missing_condition_ids first")
    if snapshot.shard_count != shard_count():
        raise dg.Failure(
            f"PAYOUT_SHARDS changed since the snapshot: it is {shard_count()}, the snapshot was "
            f"split into {snapshot.shard_count} shards; set PAYOUT_SHARDS={snapshot.shard_count} "
            "to finish this backfill, or take a new snapshot with the current value "
            "(payout-backfill run --fresh, or materialise missing_condition_ids)"
        )
    try:
        with warnings.catch_warnings():
            # Dagster 1.13's own Pipes client calls one of its preview APIs and would print a
            # PreviewWarning into every shard run's log; the warning is about Dagster's code.
            # (A module-level filter does not last: Dagster loads definitions inside its own
            # catch_warnings block, which drops filters added meanwhile.)
            warnings.filterwarnings(
                "ignore", message=".*expected_writer_count", category=dg.PreviewWarning
            )
            # Secrets go in the worker's environment; the extras are written to a file.
            settings, secret_env = worker.split_secrets(goldsky.settings(), clickhouse.dsn)
            invocation = pipes_client.run(
                command=[sys.executable, "-m", "payout_assets.sources.goldsky.worker"],
                context=context,
                extras={
                    "parent_pid": os.getpid(),
                    "shard": shard,
                    "snapshot": dataclasses.asdict(snapshot),
                    "clickhouse": {"lock_timeout_s": clickhouse.lock_timeout_s},
                    "goldsky": settings,
                },
                env=secret_env,
            )
        report: dict[str, Any] = next(iter(invocation.get_custom_messages()), {})
    except Exception as exc:  # the worker exited non-zero or could not start: no report
        report = {"failed": {"error": f"the fetch worker failed: {exc}", "condition_ids": []}}
    if "done" not in report:
        failed = report.get("failed", {"error": "the fetch worker sent no report"})
        _record_failure(context, store, shard, snapshot, failed)
    done = report["done"]
    outcomes = done["outcomes"]
    return dg.MaterializeResult(
        metadata={
            "dagster/partition_row_count": done["done_ids"],
            "outcomes": counts_table(outcomes, label="outcome"),
            "resolved": outcomes.get("resolved", 0),
            "rejected": outcomes.get("rejected", 0),
            "requests": done["requests"],
            "retries": done["retries"],
            "batches": done["batches"],
            "snapshot_block": snapshot.block_number,
            "seconds": done["seconds"],
            "rejected_sample": md_table(
                ["condition_id", "reason"], done["rejected_sample"] or [("-", "-")]
            ),
        }
    )


def _record_failure(
    context: dg.AssetExecutionContext,
    store: ClickHouseStore,
    shard: int,
    snapshot: Snapshot,
    failed: dict[str, Any],
) -> NoReturn:
    """Drop the run's staged rows, record the shard and the failed batch's ids as failed in the
    ledger, and fail the step with that batch in the metadata."""
    error = failed["error"]
    failed_ids: list[str] = failed.get("condition_ids", [])
    run_id = context.run.run_id
    with store.session():
        tables.drop_staged_run(store, shard, run_id)
        tables.fail_shard(store, shard, run_id, snapshot.generation, f"shard run failed: {error}")
        tables.record_states(
            store, snapshot.generation, run_id, [(c, "failed", error, shard) for c in failed_ids]
        )
    raise dg.Failure(
        description=f"{context.partition_key} failed: {error}",
        metadata={
            "error": error,
            "failed_batch_size": len(failed_ids),
            "failed_batch_all_ids": dg.MetadataValue.json(failed_ids),
            "failed_batch_ids": dg.MetadataValue.md(
                "\n".join(f"- `{c}`" for c in failed_ids[:50])
                or "(no batch: the shard failed before fetching)"
            ),
        },
    )


@dg.asset(
    group_name=GROUP,
    owners=OWNERS,
    kinds={"clickhouse", "table"},
    partitions_def=shard_partitions,
    deps=[goldsky_payouts],
    description=(
        "default.resolutions_external_ingest: resolved payout vectors from Goldsky "
        "(source = 'goldsky'), loaded per shard from the newest validated staging run. "
        "ReplacingMergeTree keyed by condition_id with a version column: the newest fetch wins; "
        "read it with FINAL."
    ),
    metadata=table_name("default.resolutions_external_ingest"),
)
def resolutions_external_ingest(
    context: dg.AssetExecutionContext, clickhouse: ClickHouseResource
) -> dg.MaterializeResult:
    shard = shard_index(context.partition_key)
    with clickhouse.held(merges=False) as store:
        tables.ensure_schema(store)
        latest = tables.shard_run_to_ingest(store, shard, context.run.run_id)
        if latest is None:
            raise dg.Failure(
                f"{context.partition_key} has no validated fetch yet: materialise goldsky_payouts "
                f"for {context.partition_key} first"
            )
        run_id, _generation = latest
        tables.ingest_shard(store, shard, run_id)
        superseded = tables.drop_superseded_runs(store, shard, run_id)
        outcomes = tables.shard_outcomes(store, shard, run_id)
        loaded = outcomes.get("resolved", 0)
        return dg.MaterializeResult(
            metadata={
                "dagster/partition_row_count": loaded,
                "loaded_rows": loaded,
                "from_fetch_run": run_id,
                "superseded_fetch_runs_dropped": superseded,
            }
        )


@dg.asset(
    group_name=GROUP,
    owners=OWNERS,
    kinds={"clickhouse", "view"},
    deps=[resolutions_external_ingest],
    description=(
        "cascadian_clean.vw_resolutions_truth: one row per resolved condition for P&L. "
        "market_resolutions_final wins where both sources have a payout; both tables are read "
        "with FINAL and LIMIT 1 BY condition_id, so no condition ever appears twice."
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
