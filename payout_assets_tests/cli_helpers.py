"""Running the project's real command lines in tests: own process group, bounded, always reaped."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from payout_assets.settings import PROJECT_ROOT
from payout_standins.procs import stop_group

BIN = Path(sys.executable).parent


def project_env(home: Path, endpoint: str, **extra: str) -> dict[str, str]:
    """The environment a user would set: a DAGSTER_HOME with the project's dagster.yaml, the
    embedded store inside it, and the simulator as the endpoint. The subgraph is the only
    source unless ``extra`` says otherwise (PAYOUT_SOURCES=goldsky behaves as before the chain
    source existed: these tests hold it to that)."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GOLDSKY_", "PAYOUT_", "CLICKHOUSE_", "POLYGON_"))
    }
    env.update(
        DAGSTER_HOME=str(home),
        CLICKHOUSE_DSN=f"chdb://{home / 'clickhouse'}",
        GOLDSKY_ENDPOINT=endpoint,
        GOLDSKY_BACKOFF_S="0.05",
        **{"PAYOUT_SOURCES": "goldsky", **extra},
    )
    return env


def start(args: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen(
        list(args),
        env=dict(env),
        cwd=PROJECT_ROOT,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def run(args: Sequence[str], env: Mapping[str, str], log: Path, timeout: float = 300) -> int:
    """Run a command to completion (bounded); the whole process group is killed on timeout."""
    proc = start(args, env, log)
    try:
        return proc.wait(timeout=timeout)
    finally:
        stop_group(proc, signal.SIGKILL)


def cli(*args: str) -> list[str]:
    return [str(BIN / "payout-backfill"), *args]


def standins(*args: str) -> list[str]:
    """``python -m payout_standins``: the demo, the development UI, the simulator."""
    return [str(BIN / "python"), "-m", "payout_standins", *args]


def dagster(*args: str) -> list[str]:
    return [str(BIN / "dagster"), *args]


def materialize(select: str, partition: str | None = None) -> list[str]:
    """``dagster asset materialize`` for a selection (and one partition) of this project."""
    args = ["asset", "materialize", "-m", "payout_assets.definitions", "--select", select]
    return dagster(*args, *(["--partition", partition] if partition else []))


def dg_cli(*args: str) -> list[str]:
    return [str(BIN / "dg"), *args]
