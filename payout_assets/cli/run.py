"""``payout-backfill run``: the whole backfill through the Dagster instance at DAGSTER_HOME.

Each step is a real Dagster run started with ``dagster asset materialize`` (so the UI shows every
run, with its logs and checks), and each shard is its own run in its own process, in parallel.
Run it again after a failure or a kill and it resumes: shards already done for the current
``missing_condition_ids`` are not fetched again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from payout_assets.cli.checkpoint import shard_checkpoints
from payout_assets.config import dagster_home, shard_count
from payout_assets.defs.partitions import shard_key

MODULE = "payout_assets.definitions"
SHARD_SELECTION = "goldsky_payouts,resolutions_external_ingest"


@dataclass
class RunOutcome:
    new_snapshot: bool
    shards_total: int
    shards_run: list[str] = field(default_factory=list)
    shards_failed: list[str] = field(default_factory=list)
    view_ok: bool = False
    log_dir: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.shards_failed and self.view_ok


def _dagster_cli() -> str:
    candidate = Path(sys.executable).with_name("dagster")
    return str(candidate) if candidate.exists() else "dagster"


def _materialize(select: str, partition: str | None, log_path: Path) -> subprocess.Popen[bytes]:
    command = [_dagster_cli(), "asset", "materialize", "-m", MODULE, "--select", select]
    if partition:
        command += ["--partition", partition]
    log = log_path.open("wb")
    # Own process group, so an interrupt stops the whole run tree, not just the CLI wrapper.
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_all(procs: dict[str, subprocess.Popen[bytes]], say) -> dict[str, int]:
    codes: dict[str, int] = {}
    try:
        while len(codes) < len(procs):
            for name, proc in procs.items():
                if name not in codes and proc.poll() is not None:
                    codes[name] = proc.returncode
                    say(
                        f"  {name}: {'done' if proc.returncode == 0 else 'FAILED'} ({len(codes)}/{len(procs)})"
                    )
            time.sleep(0.2)
    except BaseException:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        raise
    return codes


def ensure_home() -> Path:
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def run_backfill(fresh: bool = False, max_parallel: int | None = None, say=print) -> RunOutcome:
    """Materialise the snapshot (when needed), every shard not yet done, then the view."""
    home = ensure_home()
    keys = [shard_key(i) for i in range(shard_count())]
    log_dir = home / "logs" / time.strftime("%Y%m%d-%H%M%S")
    log_dir.mkdir(parents=True, exist_ok=True)
    instance = dg.DagsterInstance.get()
    since, checkpoints = shard_checkpoints(instance, keys)
    resume = since is not None and not fresh and not all(c.done for c in checkpoints)
    outcome = RunOutcome(new_snapshot=not resume, shards_total=len(keys), log_dir=log_dir)

    started = time.monotonic()
    if resume:
        say(
            f"resuming the backfill started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))}"
        )
    else:
        say("materialising missing_condition_ids (new snapshot)")
        code = _wait_all(
            {
                "missing_condition_ids": _materialize(
                    "missing_condition_ids", None, log_dir / "missing_condition_ids.log"
                )
            },
            say,
        )
        outcome.seconds["missing_condition_ids"] = time.monotonic() - started
        if code["missing_condition_ids"] != 0:
            say(f"missing_condition_ids failed; see {log_dir / 'missing_condition_ids.log'}")
            outcome.shards_failed = keys
            return outcome
        since, checkpoints = shard_checkpoints(instance, keys)

    todo = [c.key for c in checkpoints if not c.done]
    say(f"{len(keys) - len(todo)} of {len(keys)} shards already done; running {len(todo)}")
    shard_start = time.monotonic()
    limit = max_parallel or len(todo) or 1
    codes: dict[str, int] = {}
    for start in range(0, len(todo), limit):
        wave = todo[start : start + limit]
        procs = {k: _materialize(SHARD_SELECTION, k, log_dir / f"{k}.log") for k in wave}
        codes.update(_wait_all(procs, say))
    outcome.seconds["shards"] = time.monotonic() - shard_start
    outcome.shards_run = todo
    outcome.shards_failed = [k for k, c in codes.items() if c != 0]
    if outcome.shards_failed:
        say(
            f"failed shards: {', '.join(outcome.shards_failed)}; logs in {log_dir}. Run again to retry them alone."
        )
        return outcome

    view_start = time.monotonic()
    code = _wait_all(
        {
            "vw_resolutions_truth": _materialize(
                "vw_resolutions_truth", None, log_dir / "vw_resolutions_truth.log"
            )
        },
        say,
    )
    outcome.seconds["vw_resolutions_truth"] = time.monotonic() - view_start
    outcome.view_ok = code["vw_resolutions_truth"] == 0
    outcome.seconds["total"] = time.monotonic() - started
    return outcome
