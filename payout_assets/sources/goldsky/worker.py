"""``python -m payout_assets.sources.goldsky.worker``: one shard's fetch, validation and staging,
run through Dagster Pipes in a process that never imports Dagster.

Why a separate process: a shard run is a fork of a process that holds all of Dagster, its
instance and the code location. The fetch is the longest and largest part of a shard (its
batches, its flushes, the engine sessions that stage and publish them), so it runs in a process
that imports only what it needs. The Dagster step (``goldsky_payouts``) prepares the shard under
its lock, starts this process with ``dg.PipesSubprocessClient`` and streams its log lines into the
run's log.

The worker reports through Pipes: the shard's materialization (``report_asset_materialization``,
which the step returns with ``get_materialize_result``), or, when a batch fails, one custom
message ``{"error": ..., "condition_ids": [...]}`` naming the batch, which the step records in the
ledger (as it records a worker that dies without a report).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from typing import Any

from dagster_pipes import PipesContext, open_dagster_pipes

from payout_assets.redact import redact
from payout_assets.sources.goldsky.client import ClientSettings, GoldskyClient
from payout_assets.sources.goldsky.shard import ShardFailed, ShardProgress, run_shard
from payout_assets.validate.rules import counts_markdown, markdown_table
from payout_assets.warehouse import tables
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets.warehouse.tables import Snapshot

_PR_SET_PDEATHSIG = 1  # prctl option, from linux/prctl.h
# The DSN and the endpoint settings that may hold a password, an API key or an authorization
# header reach the worker in this environment variable, never in the Pipes extras: Dagster writes
# the Pipes context to a file in the temp dir, and a run killed with SIGKILL leaves it there.
SECRETS_ENV = "PAYOUT_WORKER_SECRETS"
SECRET_SETTINGS = ("endpoint", "api_key", "headers", "redis_url")


def split_secrets(settings: ClientSettings, dsn: str) -> tuple[dict[str, Any], dict[str, str]]:
    """(the endpoint settings safe to write into the Pipes context, the worker's environment
    holding the rest and the DSN). The endpoint is a secret too: its URL may carry a password."""
    data = settings.to_json()
    public = {k: v for k, v in data.items() if k not in SECRET_SETTINGS}
    secrets = {"dsn": dsn, "goldsky": {k: data[k] for k in SECRET_SETTINGS}}
    return public, {SECRETS_ENV: json.dumps(secrets)}


def _secrets() -> dict[str, Any]:
    """What :func:`split_secrets` put in the environment, removed from it so that nothing this
    process starts inherits it."""
    raw = os.environ.pop(SECRETS_ENV, None)
    if raw is None:
        raise RuntimeError(f"{SECRETS_ENV} is not set: start the worker from goldsky_payouts")
    return dict(json.loads(raw))


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this process when the run process that started it dies (Linux).

    A run killed with SIGKILL (a stopped backfill, an OOM kill) cannot pass the signal on, and an
    orphaned worker would go on fetching and writing for a run that is already over. The parent
    may have died before the call took effect, hence the check after it."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


def _secret_values(secrets: dict[str, Any]) -> list[str]:
    """The literal values an error message must not repeat: the API key and header values."""
    goldsky = secrets.get("goldsky", {})
    values = [goldsky.get("api_key") or "", *dict(goldsky.get("headers") or {}).values()]
    return [str(v) for v in values if len(str(v)) >= 4]


def fetch(pipes: PipesContext) -> None:
    """Fetch, validate, stage and publish the shard the Pipes context names, and report it."""
    shard = int(pipes.get_extra("shard"))
    run_id = pipes.run_id
    snapshot = Snapshot(**pipes.get_extra("snapshot"))
    secrets: dict[str, Any] = {}
    try:
        secrets = _secrets()
        store = ClickHouseStore(secrets["dsn"], **pipes.get_extra("clickhouse"), merges=False)
        settings = ClientSettings.from_json({**pipes.get_extra("goldsky"), **secrets["goldsky"]})
        with GoldskyClient(settings, log=pipes.log) as client:
            progress: ShardProgress = run_shard(
                store,
                client,
                shard,
                run_id,
                snapshot,
                on_progress=lambda p: pipes.log.info(p.summary()),
                log=pipes.log,
            )
            requests, retries = client.requests_sent, client.retries
        tables.publish_shard(store, shard, run_id, snapshot.generation)
    except BaseException as exc:  # a termination (SIGINT) is reported like any failure
        ids = exc.condition_ids if isinstance(exc, ShardFailed) else ()
        error = redact(str(exc), _secret_values(secrets)) or type(exc).__name__
        pipes.report_custom_message({"error": error, "condition_ids": list(ids)})
        return
    pipes.report_asset_materialization(
        metadata=shard_metadata(progress, requests, retries, snapshot.block_number)
    )


def shard_metadata(
    progress: ShardProgress, requests: int, retries: int, block: int
) -> dict[str, Any]:
    """The shard's materialization metadata, in Pipes' raw form (markdown tables typed ``md``)."""
    outcomes = progress.outcomes
    sample = progress.rejected_sample or [("-", "-")]
    return {
        "dagster/partition_row_count": progress.done_ids,
        "outcomes": {"raw_value": counts_markdown(outcomes, "outcome"), "type": "md"},
        "resolved": outcomes.get("resolved", 0),
        "rejected": outcomes.get("rejected", 0),
        "requests": requests,
        "retries": retries,
        "batches": progress.batches,
        "snapshot_block": block,
        "seconds": round(progress.elapsed_s, 2),
        "rejected_sample": {
            "raw_value": markdown_table(["condition_id", "reason"], sample),
            "type": "md",
        },
    }


def main() -> None:
    with open_dagster_pipes() as pipes:
        die_with_parent(int(pipes.get_extra("parent_pid")))
        fetch(pipes)


if __name__ == "__main__":
    main()
