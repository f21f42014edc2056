"""``python -m payout_standins dev`` (what ``make dev`` runs): the Dagster UI and daemon on 127.0.0.1:3000.

With no GOLDSKY_ENDPOINT set (this machine cannot reach Goldsky), it also starts the local
simulator with the demo's universe, and seeds the embedded store like the demo when it has no
``trades_raw`` yet, so a newcomer can launch a backfill of every shard from the UI at once. With
no POLYGON_RPC_URL, it serves the demo's local Polygon (anvil, from the chain the demo left in
DAGSTER_HOME, or an empty one), so the scan's block ranges can be backfilled from the UI too.

``dagster dev`` and the simulator run in process groups of their own, so this process owns their
shutdown: Ctrl+C, SIGTERM (``kill``, a service manager) and SIGHUP (its terminal closed) all stop
both groups, every member of them, before it exits; nothing is left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from payout_assets.cli.run import ensure_home
from payout_assets.settings import PROJECT_ROOT, clickhouse_dsn
from payout_assets.warehouse.store import ClickHouseStore
from payout_standins.demo import (
    DEMO_IDS,
    POLYGON_STATE,
    demo_simulator_config,
    seed_store,
    use_local_chain,
)
from payout_standins.goldsky import Universe
from payout_standins.polygon import LocalPolygon
from payout_standins.procs import stop_group

BIN = Path(sys.executable).parent
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stop(Exception):
    """SIGTERM or SIGHUP arrived: leave through the same cleanup as Ctrl+C."""


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def _start_simulator(started: list[subprocess.Popen[Any]]) -> str:
    config = demo_simulator_config()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "payout_standins",
            "simulate",
            "--port",
            "0",
            "--size",
            str(config.size),
            "--seed",
            str(config.seed),
            "--latency-ms",
            str(config.latency_ms),
            "--jitter-ms",
            str(config.jitter_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    started.append(proc)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        raise RuntimeError(f"the simulator did not start: {url!r}")
    return url


def run_dev(port: int) -> int:
    """Serve until dagster dev exits or Ctrl+C / SIGTERM / SIGHUP; then stop everything."""
    home = ensure_home()
    started: list[subprocess.Popen[Any]] = []
    previous = {sig: signal.signal(sig, _raise_stop) for sig in STOP_SIGNALS}
    try:
        return _serve(home, port, started)
    except (KeyboardInterrupt, Stop):
        return 0
    finally:
        for sig in (*STOP_SIGNALS, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)  # a second signal must not cut the cleanup short
        for proc in reversed(started):
            stop_group(proc)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _serve(home: Path, port: int, started: list[subprocess.Popen[Any]]) -> int:
    """Start the simulator (when no endpoint is set) and dagster dev, then wait for dagster dev.
    Each process goes into ``started`` as soon as it exists, for ``run_dev`` to stop."""
    if not os.environ.get("GOLDSKY_ENDPOINT"):
        url = _start_simulator(started)
        os.environ["GOLDSKY_ENDPOINT"] = url
        print(f"GOLDSKY_ENDPOINT unset: serving the local simulator at {url}")
        store = ClickHouseStore(clickhouse_dsn())
        if store.embedded and not store.table_exists("default.trades_raw"):
            config = demo_simulator_config()
            print(f"seeding the demo's {DEMO_IDS:,} ids into {store.display_dsn}")
            seed_store(store, Universe(config.size, config.seed), DEMO_IDS)
    if not os.environ.get("POLYGON_RPC_URL"):
        node = LocalPolygon(state_path=home / POLYGON_STATE)
        started.append(node.proc)
        use_local_chain(node.url)
        print(f"POLYGON_RPC_URL unset: serving the demo's local Polygon at {node.url}")
    dagster = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(home)},
        start_new_session=True,
    )
    started.append(dagster)
    return dagster.wait()
