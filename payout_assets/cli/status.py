"""``payout-backfill status``: where every shard of the backfill stands, from any terminal.

The state of a shard comes from the Dagster instance at DAGSTER_HOME, the same place the UI and
``payout-backfill run`` read (its latest run tagged ``dagster/partition=shard-NN``, whichever job
started it, and the partition checkpoint); the counts come from ClickHouse, where a running shard's
staged rows appear as it flushes. The store is opened once per refresh, for a few small queries,
so ``status`` can run (and ``--watch`` can poll) while a backfill holds it most of the time.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
from clickhouse_connect.driver.exceptions import ClickHouseError

from payout_assets.cli.checkpoint import ShardCheckpoint, shard_checkpoints
from payout_assets.defs.partitions import shard_key, shard_partitions
from payout_assets.redact import redact
from payout_assets.settings import clickhouse_dsn, dagster_home
from payout_assets.warehouse import chain
from payout_assets.warehouse.store import ClickHouseStore, StoreError

PARTITION_TAG = "dagster/partition"
LOCK_TIMEOUT_S = 60.0

_QUEUED = {
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.MANAGED,
    dg.DagsterRunStatus.SUSPENDED,
}
_RUNNING = {
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
}
_FAILED = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dataclass(frozen=True)
class LastRun:
    """The newest Dagster run of a shard (any job: the CLI's, a UI backfill's, a single launch)."""

    run_id: str
    job_name: str
    status: str
    created_at: float
    started_at: float | None
    ended_at: float | None


@dataclass
class ShardStatus:
    key: str
    state: str  # missing | queued | running | done | failed
    ids: int | None = None
    rows: int | None = None
    resolved: int | None = None
    rejected: int | None = None
    last_run: LastRun | None = None
    rows_run_id: str | None = None
    rate: float | None = None  # staged rows per second of the run that staged them


@dataclass
class StatusReport:
    dagster_home: str
    store: str
    shards: list[ShardStatus]
    snapshot: dict[str, Any] | None = None
    totals: dict[str, Any] = field(default_factory=dict)
    eta_s: float | None = None
    active: bool = False
    messages: list[str] = field(default_factory=list)
    chain: dict[str, int] | None = None  # the Polygon scan's progress (warehouse.chain)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- reading the Dagster instance ---------------------------------------------------------------


def _timestamp(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def latest_runs(instance: dg.DagsterInstance, keys: Sequence[str]) -> dict[str, LastRun]:
    """The newest run per shard partition, one indexed query per shard."""
    out: dict[str, LastRun] = {}
    for key in keys:
        records = instance.get_run_records(
            filters=dg.RunsFilter(tags={PARTITION_TAG: key}), limit=1
        )
        if not records:
            continue
        record = records[0]
        run = record.dagster_run
        out[key] = LastRun(
            run_id=run.run_id,
            job_name=run.job_name,
            status=run.status.value,
            created_at=_timestamp(record.create_timestamp) or 0.0,
            started_at=_timestamp(record.start_time),
            ended_at=_timestamp(record.end_time),
        )
    return out


def shard_state(
    last: LastRun | None, checkpoint: ShardCheckpoint | None, snapshot_at: float | None
) -> str:
    """A run in flight wins (queued / running); then the partition checkpoint (done); a failed
    run counts only if it belongs to the current snapshot, otherwise the shard is still missing."""
    status = dg.DagsterRunStatus(last.status) if last is not None else None
    if status in _RUNNING:
        return "running"
    if status in _QUEUED:
        return "queued"
    if checkpoint is not None and checkpoint.done:
        return "done"
    if (
        last is not None
        and status in _FAILED
        and (snapshot_at is None or last.created_at >= snapshot_at)
    ):
        return "failed"
    return "missing"


# -- reading ClickHouse -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Staged:
    run_id: str
    rows: int
    resolved: int
    rejected: int
    first_fetch: float
    last_fetch: float


@dataclass
class _StoreView:
    snapshot: dict[str, Any] | None = None
    ids: dict[str, int] = field(default_factory=dict)
    staged: dict[str, list[_Staged]] = field(default_factory=dict)
    message: str | None = None
    chain: dict[str, int] | None = None


def read_store(store: ClickHouseStore) -> _StoreView:
    """Snapshot, ids per shard and staged progress per run, in one short session."""
    view = _StoreView()
    with store.session():
        tables = {r[0] for r in store.query_file("status/pipeline_tables.sql")}
        if "polygon_scan_chunks" in tables:
            view.chain = chain.scan_status(store)
        if "snapshots" not in tables or "missing_condition_ids" not in tables:
            view.message = (
                "no snapshot yet: `payout-backfill run` (or materialising missing_condition_ids) "
                "takes one first"
            )
            return view
        rows = store.query_file("status/snapshot.sql")
        if not rows:
            view.message = "no snapshot yet: missing_condition_ids has not been materialised"
            return view
        generation, block, deployment, errors, shards, lines, distinct, created = rows[0]
        view.snapshot = {
            "generation": generation,
            "block_number": int(block),
            "deployment": deployment,
            "has_indexing_errors": bool(errors),
            "shard_count": int(shards),
            "input_rows": int(lines),
            "distinct_ids": int(distinct),
            "created_at": _timestamp(created),
        }
        for shard, ids, _generation in store.query_file("status/shard_ids.sql"):
            view.ids[shard_key(int(shard))] = int(ids)
        if "goldsky_payouts" in tables:
            for shard, run_id, staged, resolved, rejected, first, last in store.query_file(
                "status/staged_runs.sql", {"generation": generation}
            ):
                view.staged.setdefault(shard_key(int(shard)), []).append(
                    _Staged(
                        run_id, int(staged), int(resolved), int(rejected), float(first), float(last)
                    )
                )
    return view


# -- putting it together ------------------------------------------------------------------------


def _rate(rows: int, last: LastRun | None, now: float) -> float | None:
    if last is None or not rows:
        return None
    start = last.started_at or last.created_at
    end = last.ended_at or now
    return rows / (end - start) if end > start else None


def collect_status(
    instance: dg.DagsterInstance | None,
    store: ClickHouseStore | None,
    keys: Sequence[str],
    now: Callable[[], float] = time.time,
) -> StatusReport:
    report = StatusReport(
        dagster_home=str(dagster_home()),
        store=store.display_dsn if store is not None else redact(clickhouse_dsn()),
        shards=[],
    )
    runs: dict[str, LastRun] = {}
    checkpoints: dict[str, ShardCheckpoint] = {}
    snapshot_at: float | None = None
    if instance is None:
        report.messages.append(
            f"no Dagster instance at {report.dagster_home} yet: nothing has run there"
        )
    else:
        snapshot_at, found = shard_checkpoints(instance, list(keys))
        checkpoints = {c.key: c for c in found}
        runs = latest_runs(instance, keys)

    view = _StoreView()
    if store is None:
        report.messages.append(f"no embedded ClickHouse store at {report.store} yet")
    else:
        try:
            view = read_store(store)
        except (StoreError, ClickHouseError, OSError) as exc:
            view.message = f"ClickHouse unavailable, counts not shown: {exc}"
    if view.message:
        report.messages.append(view.message)
    report.chain = view.chain
    report.snapshot = view.snapshot
    if view.snapshot is not None and view.snapshot["shard_count"] != len(keys):
        report.messages.append(
            f"the snapshot was split into {view.snapshot['shard_count']} shards but PAYOUT_SHARDS "
            f"is {len(keys)}: set PAYOUT_SHARDS={view.snapshot['shard_count']} to see them all"
        )

    at = now()
    for key in keys:
        last = runs.get(key)
        status = ShardStatus(key, shard_state(last, checkpoints.get(key), snapshot_at))
        status.last_run = last
        if view.snapshot is not None:
            status.ids = view.ids.get(key, 0)
            staged = view.staged.get(key, [])
            # The latest run's own rows when it staged any (a running shard's progress);
            # otherwise the newest staged run of this snapshot (e.g. after an ingest-only run).
            mine = [s for s in staged if last is not None and s.run_id == last.run_id]
            chosen = mine[0] if mine else (staged[-1] if staged else None)
            status.rows = chosen.rows if chosen else 0
            status.resolved = chosen.resolved if chosen else 0
            status.rejected = chosen.rejected if chosen else 0
            status.rows_run_id = chosen.run_id if chosen else None
            if mine:
                status.rate = _rate(status.rows, last, at)
        report.shards.append(status)

    _totals(report)
    return report


def _totals(report: StatusReport) -> None:
    """Sums, and while anything runs an ETA from the aggregate rate of the running shards (the
    host-wide request rate, not the shard count, bounds a backfill, so the sum is the rate)."""
    states: dict[str, int] = {}
    for s in report.shards:
        states[s.state] = states.get(s.state, 0) + 1
    running = [s for s in report.shards if s.state == "running"]
    report.active = bool(running) or states.get("queued", 0) > 0
    rate = sum(s.rate or 0.0 for s in running)
    report.totals = {
        "shards": len(report.shards),
        "states": states,
        "ids": sum(s.ids or 0 for s in report.shards),
        "rows": sum(s.rows or 0 for s in report.shards),
        "resolved": sum(s.resolved or 0 for s in report.shards),
        "rejected": sum(s.rejected or 0 for s in report.shards),
        "rate": rate,
    }
    if report.active and report.snapshot is not None:
        remaining = sum(
            max((s.ids or 0) - (s.rows or 0 if s.state == "running" else 0), 0)
            for s in report.shards
            if s.state != "done"
        )
        report.totals["remaining"] = remaining
        report.eta_s = remaining / rate if rate > 0 else None


# -- output -------------------------------------------------------------------------------------


def _clock(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _num(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def render(report: StatusReport) -> str:
    lines: list[str] = []
    snap = report.snapshot
    if snap is not None:
        lines.append(
            f"snapshot {snap['generation'][:8]} taken {_clock(snap['created_at'])}, pinned to "
            f"block {snap['block_number']:,}: {snap['distinct_ids']:,} distinct ids in, "
            f"{sum(s.ids or 0 for s in report.shards):,} to fetch in {snap['shard_count']} shards"
        )
    lines.append(f"store {report.store}   DAGSTER_HOME {report.dagster_home}")
    if report.chain and report.chain["ranges"]:
        c = report.chain
        lines.append(
            f"polygon scan: {c['ranges']:,} block ranges, blocks {c['first_block']:,}.."
            f"{c['last_block']:,} covered ({c['blocks_covered']:,} blocks), "
            f"{c['events']:,} ConditionResolution events found"
        )
    lines.extend(f"note: {m}" for m in report.messages)
    header = ("shard", "state", "ids", "rows", "resolved", "rejected", "last run", "rate")
    rows: list[tuple[str, ...]] = []
    for s in report.shards:
        last = s.last_run
        rows.append(
            (
                s.key,
                s.state,
                _num(s.ids),
                _num(s.rows),
                _num(s.resolved),
                _num(s.rejected),
                f"{_clock(last.started_at or last.created_at)} {last.status.lower()}"
                if last
                else "never",
                f"{s.rate:,.1f}/s" if s.rate else "-",
            )
        )
    t = report.totals
    states = ", ".join(f"{n} {state}" for state, n in sorted(t["states"].items()))
    rows.append(
        (
            "total",
            states,
            _num(t["ids"]) if snap else "-",
            _num(t["rows"]) if snap else "-",
            _num(t["resolved"]) if snap else "-",
            _num(t["rejected"]) if snap else "-",
            "",
            f"{t['rate']:,.1f}/s" if t["rate"] else "-",
        )
    )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {2, 3, 4, 5, 7}

    def fmt(row: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines += [fmt(header), rule, *(fmt(r) for r in rows[:-1]), rule, fmt(rows[-1])]
    if report.active:
        if report.eta_s is not None:
            lines.append(
                f"backfill running: {t.get('remaining', 0):,} ids left at {t['rate']:,.1f} ids/s, "
                f"ETA {_duration(report.eta_s)}"
            )
        else:
            lines.append("backfill running: ETA once the running shards have staged rows")
    return "\n".join(lines)


# -- the command --------------------------------------------------------------------------------


def open_instance() -> dg.DagsterInstance | None:
    """The instance at DAGSTER_HOME, or None when nothing was ever run there (status must not
    create one as a side effect of looking)."""
    home = dagster_home()
    if not home.is_dir():
        return None
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def open_store() -> ClickHouseStore | None:
    """The configured store; None for an embedded one that does not exist yet (constructing a
    store creates its directory, and looking must not create anything)."""
    dsn = clickhouse_dsn()
    if urlsplit(dsn).scheme == "chdb" and not Path(urlsplit(dsn).path).exists():
        return None
    return ClickHouseStore(dsn, lock_timeout_s=LOCK_TIMEOUT_S)


def run_status(watch: float | None = None, as_json: bool = False) -> int:
    """Print the status once, or every ``watch`` seconds until Ctrl+C."""
    from payout_assets.cli.preflight import quiet_drivers

    quiet_drivers()
    keys = shard_partitions.get_partition_keys()
    instance = open_instance()
    store = open_store()
    clear = watch is not None and sys.stdout.isatty() and not as_json
    try:
        while True:
            report = collect_status(instance, store, keys)
            text = json.dumps(report.as_dict()) if as_json else render(report)
            if clear:
                text = "\033[H\033[2J" + text
            elif watch is not None and not as_json:
                text = f"--- {_clock(time.time())}\n{text}"
            print(text, flush=True)
            if watch is None:
                return 0
            time.sleep(max(watch, 0.5))
    except KeyboardInterrupt:
        return 0
    finally:
        if instance is not None:
            instance.dispose()
