"""The chain scenario: ``payout-backfill run`` with PAYOUT_SOURCES=polygon over a synthetic
Polygon (``payout_standins.polygon.synthetic``) of ``blocks`` blocks holding ``resolutions``
ConditionResolution logs, behind a provider that accepts 10,000-block ranges and
``POLYGON_MAX_RPS`` calls per second. Floor = ceil(blocks / 10,000) / rate; a tiny chain run
first gives the fixed cost (start-up, schema, view)."""

from __future__ import annotations

import math
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.sim import PIPELINE_BIN, PROJECT_ROOT, pipeline_env
from payout_standins.polygon.synthetic import SyntheticChain, SyntheticRules
from payout_standins.procs import stop_group

RANGE_BLOCKS = (
    100_000  # partitions of 100,000 blocks: the 1,000,000-block chain is 10 ranges, 1 run
)
FIXED_RUNS = 3


def _env(home: Path, url: str, max_rps: float, tmp: Path) -> dict[str, str]:
    return pipeline_env(
        home,
        tmp,
        PAYOUT_SOURCES="polygon",
        POLYGON_RPC_URL=url,
        POLYGON_START_BLOCK="0",
        POLYGON_RANGE_BLOCKS=str(RANGE_BLOCKS),
        POLYGON_MAX_RPS=f"{max_rps:g}",
    )


def _one(workdir: Path, name: str, rules: SyntheticRules, echo: bool) -> dict[str, Any]:
    home, tmp = workdir / f"chain-{name}", workdir / f"chain-{name}-tmp"
    home.mkdir(parents=True)
    tmp.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster_home" / "dagster.yaml").read_text())
    from payout_assets.warehouse.store import ClickHouseStore
    from payout_assets.warehouse.tables import create_source_tables

    create_source_tables(ClickHouseStore(f"chdb://{home / 'clickhouse'}"))
    with SyntheticChain(rules) as chain:
        started = time.monotonic()
        proc = subprocess.Popen(
            [str(PIPELINE_BIN / "payout-backfill"), "run"],
            env=_env(home, chain.url, rules.max_rps, tmp),
            cwd=PROJECT_ROOT,
            stdout=None if echo else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=3_600)
        finally:
            stop_group(proc)
        wall = time.monotonic() - started
        served = list(chain.ranges_served)
    rows = ClickHouseStore(f"chdb://{home / 'clickhouse'}").query_rows(
        "SELECT count() FROM payout_backfill.polygon_resolutions FINAL"
    )[0][0]
    getlogs = len(served)
    return {
        "name": name,
        "blocks": rules.blocks,
        "resolutions": rules.resolutions,
        "exit_code": code,
        "wall_s": wall,
        "floor_s": math.ceil(rules.blocks / rules.max_range) / rules.max_rps,
        "calls": chain.calls,
        "getlogs_calls": getlogs,
        "ranges_read_twice": getlogs - len(set(served)),
        "rows": int(rows),
        "refused_429": chain.refused_429,
    }


def run_chain_bench(
    workdir: Path, blocks: int, resolutions: int, max_rps: float, echo: bool
) -> dict[str, Any]:
    print(
        f"== chain: {blocks:,} blocks, {resolutions:,} resolutions, POLYGON_MAX_RPS={max_rps:g}",
        flush=True,
    )
    # the fixed cost is mostly Dagster's start-up, which varies by a second or more from one
    # run to the next on two cores: its median over FIXED_RUNS runs
    tiny = SyntheticRules(blocks=10_000, resolutions=1_000, max_rps=max_rps)
    fixed_runs = [_one(workdir, f"fixed-{i}", tiny, echo) for i in range(FIXED_RUNS)]
    fixed = sorted(fixed_runs, key=lambda r: r["wall_s"])[FIXED_RUNS // 2]
    fixed["walls_s"] = [r["wall_s"] for r in fixed_runs]
    main = _one(
        workdir,
        "main",
        SyntheticRules(blocks=blocks, resolutions=resolutions, max_rps=max_rps),
        echo,
    )
    fixed_s = fixed["wall_s"] - fixed["floor_s"]
    main["fixed_s"] = fixed_s
    main["target_s"] = 1.2 * main["floor_s"] + fixed_s
    # the full history: ~4.02 M -> ~87 M blocks at 10,000 blocks per call
    main["projected_history_s"] = math.ceil((87_000_000 - 4_023_686) / 10_000) / max_rps
    return {"fixed": fixed, "main": main}


def chain_table(result: dict[str, Any]) -> str:
    fixed, main = result["fixed"], result["main"]
    rows = [
        ("chain", f"{main['blocks']:,} blocks, {main['resolutions']:,} resolutions"),
        ("exit code / rows landed", f"{main['exit_code']} / {main['rows']:,}"),
        ("wall", f"{main['wall_s']:.1f} s"),
        ("floor (ceil(blocks / 10,000) / rate)", f"{main['floor_s']:.1f} s"),
        ("fixed cost (10,000-block chain, median wall - floor)", f"{main['fixed_s']:.1f} s"),
        ("target (1.2 x floor + fixed)", f"{main['target_s']:.1f} s"),
        ("JSON-RPC calls (eth_getLogs)", f"{main['calls']:,} ({main['getlogs_calls']:,})"),
        ("block ranges read twice", f"{main['ranges_read_twice']}"),
        ("429s from the provider", f"{main['refused_429']}"),
        (
            "fixed runs: walls / exit code",
            f"{', '.join(f'{w:.1f}' for w in fixed['walls_s'])} s / {fixed['exit_code']}",
        ),
        (
            "projected: full Polygon history at this rate",
            f"{main['projected_history_s'] / 60:.1f} min",
        ),
    ]
    lines = ["| chain scenario | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    return "\n".join(lines)
