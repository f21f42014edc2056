"""``payout-backfill dev`` (what ``make dev`` runs): the Dagster UI and daemon on 127.0.0.1:3000.

With no GOLDSKY_ENDPOINT set (this machine cannot reach Goldsky), it also starts the local
simulator with the demo's universe, and seeds the embedded store like the demo when it has no
``trades_raw`` yet, so a newcomer can launch a backfill of every shard from the UI at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from payout_assets.cli.demo import DEMO_IDS, demo_simulator_config, seed_store
from payout_assets.cli.run import ensure_home
from payout_assets.config import PROJECT_ROOT, default_clickhouse_dsn
from payout_assets.simulator import Universe
from payout_assets.write.store import ClickHouseStore

BIN = Path(sys.executable).parent


def _start_simulator() -> tuple[subprocess.Popen[str], str]:
    config = demo_simulator_config()
    proc = subprocess.Popen(
        [
            str(BIN / "payout-backfill"),
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
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError(f"the simulator did not start: {url!r}")
    return proc, url


def run_dev(port: int) -> int:
    home = ensure_home()
    simulator: subprocess.Popen[str] | None = None
    if not os.environ.get("GOLDSKY_ENDPOINT"):
        simulator, url = _start_simulator()
        os.environ["GOLDSKY_ENDPOINT"] = url
        print(f"GOLDSKY_ENDPOINT unset: serving the local simulator at {url}")
        store = ClickHouseStore(os.environ.get("CLICKHOUSE_DSN") or default_clickhouse_dsn())
        if store.embedded and not store.table_exists("default.trades_raw"):
            config = demo_simulator_config()
            print(f"seeding the demo's {DEMO_IDS:,} ids into {store.display_dsn}")
            seed_store(store, Universe(config.size, config.seed), DEMO_IDS)
    dagster = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(home)},
        start_new_session=True,
    )
    try:
        return dagster.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in (dagster, simulator):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
