"""The backfill's snapshot: which ids still lack a payout, split into shards, pinned to one
subgraph block.

``take_snapshot`` is the work behind the ``missing_condition_ids`` asset; it returns a
:class:`SnapshotReport` that the asset turns into metadata.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from payout_assets.sources.goldsky.client import GoldskyClient, SubgraphMeta
from payout_assets.sources.goldsky.errors import PermanentGoldskyError
from payout_assets.validate.ids import InvalidId, iter_id_lines, normalize_condition_id
from payout_assets.warehouse import schema, tables
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets.warehouse.tables import Snapshot

INPUT_CHUNK = 50_000
INVALID_SAMPLE = 10


@dataclass
class SnapshotReport:
    """What a snapshot found, for the asset's metadata and log."""

    generation: str
    meta: SubgraphMeta
    source: str
    input_rows: int
    counts: dict[str, int]
    shard_sizes: dict[int, int]
    incremental: dict[str, str]
    invalid_sample: list[tuple[str, str]] = field(default_factory=list)

    @property
    def distinct_ids(self) -> int:
        return sum(self.counts.values())


def take_snapshot(
    store: ClickHouseStore,
    client: GoldskyClient,
    *,
    generation: str,
    shards: int,
    ids_file: Path | None,
    universe_sql: str,
    incremental: bool,
    log: logging.Logger,
) -> SnapshotReport:
    """Load the candidate ids, normalise and deduplicate them, drop those already resolved (and,
    on an incremental refresh, those the subgraph has not changed), assign the rest to
    ``shards`` shards and publish them as the current snapshot, pinned to the subgraph's block."""
    tables.ensure_schema(store)
    with store.session():  # the cleanup's wait and the read of the previous snapshot: one open
        if deleted := schema.delete_outdated_parts(store):
            log.info(f"the store deleted {deleted} parts that earlier merges left outdated")
        previous = tables.current_snapshot(store)
    meta = client.meta()
    if meta.has_indexing_errors:
        log.warning(
            "the subgraph reports hasIndexingErrors=true: some conditions may be missing from it"
        )
    names = tables.scratch_names(generation)
    with store.session():
        tables.create_candidates(store, names)
        source, overlong_lines = _load_input(store, ids_file, universe_sql, generation, names)
        lines = tables.input_count(store, generation) + overlong_lines
        invalid_sample: list[tuple[str, str]] = []
        for chunk in tables.iter_input_chunks(store, generation):
            candidates = [
                (n.text, n.reason) if isinstance(n, InvalidId) else (n, "")
                for n in map(normalize_condition_id, chunk)
            ]
            tables.add_candidates(store, names, candidates)
            invalid_sample += [(t[:80], r) for t, r in candidates if r][
                : INVALID_SAMPLE - len(invalid_sample)
            ]
    skipped = (
        _skip_unchanged(store, client, names, previous, meta, log)
        if incremental and previous is not None
        else {
            "mode": "full (no previous snapshot)"
            if previous is None
            else "full (PAYOUT_INCREMENTAL=0)"
        }
    )
    with store.session():
        distinct = tables.build_missing(
            store, names, generation, generation, shards, unchanged_reason=skipped.get("reason", "")
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
    return SnapshotReport(generation, meta, source, lines, counts, sizes, skipped, invalid_sample)


def _load_input(
    store: ClickHouseStore,
    ids_file: Path | None,
    universe_sql: str,
    generation: str,
    names: dict[str, str],
) -> tuple[str, int]:
    """Copy the candidate ids into ``payout_backfill.id_input``; returns where they came from
    and how many lines were too long to be ids.

    Lines of the ids file are read with a bound (``iter_id_lines``): an overlong one goes
    straight to the candidates as an invalid id, truncated, with the reason."""
    if ids_file is None:
        tables.load_universe(store, generation, universe_sql)
        return "sql/condition_universe.sql", 0
    chunk: list[str] = []
    overlong: list[tuple[str, str]] = []
    overlong_lines = 0
    with ids_file.open("rb") as stream:
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
    return str(ids_file), overlong_lines


def _skip_unchanged(
    store: ClickHouseStore,
    client: GoldskyClient,
    names: dict[str, str],
    previous: Snapshot,
    meta: SubgraphMeta,
    log: logging.Logger,
) -> dict[str, str]:
    """Incremental refresh: ask the subgraph which conditions changed since the previous
    snapshot's block (``_change_block``), and do not ask again for ids that were unresolved or
    absent then and have not changed since. Falls back to asking for every id when the previous
    snapshot is not comparable (``incomparable``) or the endpoint rejects the filter. Returns
    what it did, for the metadata."""
    reason = incomparable(previous, meta.block_number, meta.deployment)
    if reason:
        log.warning(f"asking for every id again, not only the changed ones: {reason}")
        return {"mode": "full (previous snapshot not comparable)", "full because": reason}
    changed = 0
    sent_before = client.requests_sent
    try:
        chunk: list[str] = []
        for cid in client.changed_since(previous.block_number, meta.block_number):
            chunk.append(cid)
            if len(chunk) >= INPUT_CHUNK:
                tables.add_changed(store, names, chunk)
                changed, chunk = changed + len(chunk), []
        tables.add_changed(store, names, chunk)
        changed += len(chunk)
    except PermanentGoldskyError as exc:
        log.warning(f"the subgraph rejected the _change_block filter ({exc}); asking for every id")
        return {"mode": "full (endpoint rejected _change_block)"}
    pages = client.requests_sent - sent_before
    skipped = tables.mark_unchanged(store, names, previous.generation)
    saved = max(0, -(-skipped // client.settings.batch_size) - pages)
    log.info(
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


def incomparable(previous: Snapshot, block: int, deployment: str) -> str:
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
