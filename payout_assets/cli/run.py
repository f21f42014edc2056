"""``payout-backfill run``: the whole backfill through the Dagster instance at DAGSTER_HOME.

Each step is a real Dagster run recorded in the instance (so the UI shows every run, with its
logs and checks), and each shard is its own run in its own process, all shards in parallel.
Run it again after a failure or a kill and it resumes: shards already done for the current
``missing_condition_ids`` are not fetched again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from payout_assets.cli import chain, launcher
from payout_assets.cli.backfill_record import BackfillRecord
from payout_assets.cli.checkpoint import shard_checkpoints, snapshot_run_id
from payout_assets.cli.failures import job_failure_lines, shard_failure_lines
from payout_assets.defs.partitions import shard_partitions
from payout_assets.settings import (
    INSTANCE_FOR_SEVERAL_HOSTS,
    PROJECT_ROOT,
    clickhouse_dsn,
    dagster_home,
    instance_db_url,
    source_enabled,
    sources,
)
from payout_assets.warehouse import tables
from payout_assets.warehouse.store import ClickHouseStore, StoreError

if TYPE_CHECKING:
    from payout_assets.cli.progress import Progress


@dataclass
class RunOutcome:
    new_snapshot: bool
    shards_total: int
    shards_run: list[str] = field(default_factory=list)
    shards_failed: list[str] = field(default_factory=list)
    view_ok: bool = False
    log_dir: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    backfill_id: str | None = None  # the UI's record of this run (cli/backfill_record.py)
    sources: tuple[str, ...] = ("goldsky",)
    sources_failed: dict[str, str] = field(default_factory=dict)  # source -> why
    polygon_runs: int = 0

    @property
    def ok(self) -> bool:
        return not self.shards_failed and self.view_ok and not self.sources_failed

    def as_summary(self, counts: Mapping[str, int]) -> dict[str, Any]:
        """The outcome and the ledger's counts per state, as ``run --json`` prints it last."""
        return {
            "ok": self.ok,
            "new_snapshot": self.new_snapshot,
            "shards_total": self.shards_total,
            "shards_run": self.shards_run,
            "shards_failed": self.shards_failed,
            "view_ok": self.view_ok,
            "sources": list(self.sources),
            "sources_failed": self.sources_failed,
            "polygon_runs": self.polygon_runs,
            "backfill_id": self.backfill_id,
            "log_dir": str(self.log_dir) if self.log_dir else None,
            "ledger": dict(counts),
            "seconds": self.seconds,
        }


def _wait_all(
    procs: dict[str, BaseProcess],
    say: Callable[[str], None],
    on_tick: Callable[[dict[str, int]], None] | None = None,
) -> dict[str, int]:
    codes: dict[str, int] = {}
    try:
        while len(codes) < len(procs):
            for name, proc in procs.items():
                if name not in codes and proc.exitcode is not None:
                    codes[name] = proc.exitcode
                    state = "done" if proc.exitcode == 0 else f"FAILED (exit {proc.exitcode})"
                    say(f"  {name}: {state} ({len(codes)}/{len(procs)})")
            if on_tick is not None:
                on_tick(codes)
            time.sleep(0.1)
    except BaseException:
        for proc in procs.values():
            if proc.exitcode is None:
                proc.terminate()
        raise
    return codes


def _one(job: str, log_dir: Path, say: Callable[[str], None], record: BackfillRecord) -> bool:
    proc = launcher.start(job, None, log_dir / f"{job}.log", record.tags())
    return _wait_all({job: proc}, say, record.tick)[job] == 0


def ensure_home() -> Path:
    """DAGSTER_HOME as an absolute, existing directory with the project's instance settings
    (``deploy/dagster.yaml``, the instance in PostgreSQL, when DAGSTER_PG_URL is set)."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        instance = INSTANCE_FOR_SEVERAL_HOSTS if instance_db_url() else None
        shutil.copyfile(instance or PROJECT_ROOT / "dagster_home" / "dagster.yaml", settings)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _store_generation() -> str | None:
    """The generation the store's shards fetch: its newest pinned snapshot (None if it has none
    or cannot be read; either way there is nothing to resume)."""
    store = ClickHouseStore(clickhouse_dsn())
    try:
        snapshot = tables.current_snapshot(store)
    except StoreError:
        return None
    return snapshot.generation if snapshot else None


def _resumable(instance: dg.DagsterInstance, say: Callable[[str], None]) -> bool:
    """Whether the instance's checkpoints describe the snapshot the shards would fetch.

    The store pins a snapshot before Dagster records its materialisation, so a snapshot run
    killed or failed in between (or a refresh that failed after swapping in its ids) leaves the
    store on a generation the instance's checkpoints know nothing of: shards "done" for the old
    one never fetched the new one's ids. Such a backfill is not resumed; a new snapshot is taken.
    """
    checkpointed = snapshot_run_id(instance)
    pinned = _store_generation()
    if checkpointed is None or pinned == checkpointed:
        return True
    say(
        f"the store's newest snapshot ({(pinned or 'none')[:8]}) is not the one Dagster "
        f"checkpointed ({checkpointed[:8]}): its run did not finish; taking a new snapshot"
    )
    return False


def run_backfill(
    fresh: bool = False,
    max_parallel: int | None = None,
    say: Callable[[str], None] = print,
    progress: Progress | None = None,
) -> RunOutcome:
    """Materialise the snapshot (when needed), every shard not yet done, then the view; the UI
    shows the whole invocation as one backfill (``payout_assets.cli.backfill_record``) and
    ``progress`` reports the shards' ids done while they run."""
    record = BackfillRecord()
    try:
        outcome = _run_backfill(fresh, max_parallel, say, record, progress)
    except BaseException:
        with contextlib.suppress(Exception):
            record.finish(interrupted=True)
        raise
    try:
        record.finish()
        outcome.backfill_id = record.backfill_id
    except Exception as exc:  # the UI's record only; the backfill itself is done
        say(f"note: the UI's Backfills page does not show this run ({type(exc).__name__}: {exc})")
    return outcome


def _run_backfill(
    fresh: bool,
    max_parallel: int | None,
    say: Callable[[str], None],
    record: BackfillRecord,
    progress: Progress | None,
) -> RunOutcome:
    """Both sources side by side: the chain scan's runs start first (they wait on the
    provider's rate, not on the shards), the subgraph's snapshot and shards run meanwhile; a
    source that fails does not stop the other, and the run names it. The view is published
    once the subgraph's shards succeeded (or when the subgraph is not a source)."""
    home = ensure_home()
    log_dir = home / "logs" / time.strftime("%Y%m%d-%H%M%S")
    log_dir.mkdir(parents=True, exist_ok=True)
    instance = dg.DagsterInstance.get()
    started = time.monotonic()
    scans: dict[str, BaseProcess] = {}
    scan_error = None
    if source_enabled("polygon"):
        try:
            scans = chain.start_scans(instance, log_dir, say)
        except chain.ScanNotStarted as exc:
            scan_error = str(exc)
    if source_enabled("goldsky"):
        outcome = _goldsky(fresh, max_parallel, say, record, progress, instance, log_dir)
    else:
        outcome = RunOutcome(new_snapshot=False, shards_total=0, log_dir=log_dir)
    outcome.sources = sources()
    outcome.polygon_runs = len(scans)
    if scans:
        codes = _wait_all(scans, say)
        failed = [name for name, code in codes.items() if code != 0]
        if failed:
            scan_error = "; ".join(
                job_failure_lines(instance, "scan_polygon") or [f"{', '.join(failed)} failed"]
            )
        outcome.seconds["polygon_condition_resolutions"] = time.monotonic() - started
    if scan_error:
        outcome.sources_failed["polygon"] = scan_error
        say(f"polygon FAILED: {scan_error}")
    if outcome.shards_failed:
        return outcome
    view_start = time.monotonic()
    outcome.view_ok = _one("publish_truth_view", log_dir, say, record)
    outcome.seconds["vw_resolutions_truth"] = time.monotonic() - view_start
    outcome.seconds["total"] = time.monotonic() - started
    return outcome


def _goldsky(
    fresh: bool,
    max_parallel: int | None,
    say: Callable[[str], None],
    record: BackfillRecord,
    progress: Progress | None,
    instance: dg.DagsterInstance,
    log_dir: Path,
) -> RunOutcome:
    """The subgraph's part: the snapshot (when needed), then every shard not yet done."""
    keys = shard_partitions.get_partition_keys()
    since, checkpoints = shard_checkpoints(instance, keys)
    resume = since is not None and not fresh and not all(c.done for c in checkpoints)
    resume = resume and _resumable(instance, say)
    outcome = RunOutcome(new_snapshot=not resume, shards_total=len(keys), log_dir=log_dir)
    record.attach(instance)
    record.expect(
        snapshot=not resume, shards=[c.key for c in checkpoints if not (resume and c.done)]
    )

    started = time.monotonic()
    if resume:
        say(
            f"resuming the backfill started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))}"
        )
    else:
        say("materialising missing_condition_ids (new snapshot)")
        ok = _one("refresh_missing_ids", log_dir, say, record)
        outcome.seconds["missing_condition_ids"] = time.monotonic() - started
        if not ok:
            say(f"missing_condition_ids failed; see {log_dir / 'refresh_missing_ids.log'}")
            for line in job_failure_lines(instance, "refresh_missing_ids"):
                say(line)
            outcome.shards_failed = keys
            return outcome
        since, checkpoints = shard_checkpoints(instance, keys)

    todo = [c.key for c in checkpoints if not c.done]
    say(f"{len(keys) - len(todo)} of {len(keys)} shards already done; running {len(todo)}")
    shard_start = time.monotonic()
    limit = max_parallel or len(todo) or 1
    codes: dict[str, int] = {}
    with progress.watching(instance, todo) if progress else contextlib.nullcontext():
        for start in range(0, len(todo), limit):
            wave = todo[start : start + limit]
            procs = {
                k: launcher.start("backfill_shard", k, log_dir / f"{k}.log", record.tags(k))
                for k in wave
            }
            codes.update(_wait_all(procs, say, lambda done: record.tick({**codes, **done})))
    outcome.seconds["shards"] = time.monotonic() - shard_start
    outcome.shards_run = todo
    outcome.shards_failed = [k for k, c in codes.items() if c != 0]
    if outcome.shards_failed:
        say(f"failed shards: {', '.join(outcome.shards_failed)}; logs in {log_dir}")
        for line in shard_failure_lines(instance, outcome.shards_failed):
            say(line)
    return outcome
