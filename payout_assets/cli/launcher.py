"""Launch backfill runs in worker processes that start in milliseconds.

Loading the code location costs seconds of CPU (Dagster, pandas, pandera, chdb). A ``forkserver``
process pays it once; every run is then a fork of it executing one job through
``dagster.execute_job`` against the instance at DAGSTER_HOME, so each run is recorded with its
logs, checks and partition, exactly as if the UI or ``dagster asset materialize`` had started it.
Each worker is a real, separate process: a shard that is killed takes nothing else with it.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import sys
from functools import cache
from multiprocessing.process import BaseProcess
from pathlib import Path

import dagster as dg

from payout_assets.definitions import defs
from payout_assets.sources.tls import tls_context


@cache
def _definitions() -> dg.Definitions:
    return defs() if callable(defs) else defs  # @dg.definitions wraps a lazy loader


def refresh_missing_ids() -> dg.JobDefinition:
    return _definitions().resolve_job_def("refresh_missing_ids")


def backfill_shard() -> dg.JobDefinition:
    return _definitions().resolve_job_def("backfill_shard")


def publish_truth_view() -> dg.JobDefinition:
    return _definitions().resolve_job_def("publish_truth_view")


def scan_polygon() -> dg.JobDefinition:
    return _definitions().resolve_job_def("scan_polygon")


_JOBS = {
    f.__name__: f for f in (refresh_missing_ids, backfill_shard, publish_truth_view, scan_polygon)
}


@cache
def _instance() -> dg.DagsterInstance:
    """The instance at DAGSTER_HOME. Opening it checks the storage schema against ~180 alembic
    migration files (about a second of CPU), so the forkserver opens it once for every run;
    its SQLite storage holds no connection between operations, so forks can share it."""
    return dg.DagsterInstance.get()


def warm_up() -> None:
    """Run once in the forkserver (see ``payout_assets.cli.forkserver``), so every fork starts
    with the code location loaded, the instance open and the TLS context built.

    The loaded heap is then frozen out of the cyclic garbage collector: every collection in a
    fork would otherwise walk (and so write to) each of its objects, copying the forkserver's
    pages into every run.
    """
    for job in _JOBS.values():
        job()
    _instance()
    tls_context()
    gc.collect()
    gc.freeze()


def _run(job_name: str, partition: str | None, log_path: str, extra_tags: dict[str, str]) -> None:
    """Worker body: execute one job, exit 0 only if the run (and its blocking checks) passed."""
    with open(log_path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    tags = {**extra_tags, **({"dagster/partition": partition} if partition else {})}
    result = dg.execute_job(dg.reconstructable(_JOBS[job_name]), instance=_instance(), tags=tags)
    sys.stdout.flush()
    os._exit(0 if result.success else 1)


_context: mp.context.ForkServerContext | None = None


def _forkserver() -> mp.context.ForkServerContext:
    global _context
    if _context is None:
        _context = mp.get_context("forkserver")
        _context.set_forkserver_preload(["payout_assets.cli.forkserver"])
    return _context


def start(
    job_name: str, partition: str | None, log_path: Path, tags: dict[str, str] | None = None
) -> BaseProcess:
    """Start one run in its own process; ``exitcode`` is 0 when it succeeded. ``tags`` are added
    to the run's (the CLI's backfill id, see ``payout_assets.cli.backfill_record``)."""
    process = _forkserver().Process(
        target=_run,
        args=(job_name, partition, str(log_path), dict(tags or {})),
        name=partition or job_name,
    )
    process.start()
    return process
