"""``python -m payout_standins demo`` (what ``make demo`` runs): the whole product on one machine, with nothing to configure.

It starts the local Goldsky simulator, seeds an embedded ClickHouse store with a ``trades_raw``
universe (known, unknown and malformed ids, some spelled with ``0x`` or in upper case) and a
``market_resolutions_final`` that already covers part of it, runs ``payout-backfill run``
against them and prints what happened, read back from the ledger and the simulator's traffic log.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from payout_assets.cli.progress import Progress
from payout_assets.cli.report import (
    ledger_counts,
    open_ids,
    open_ids_line,
    render_table,
    summary_rows,
)
from payout_assets.cli.run import ensure_home, run_backfill
from payout_assets.validate.ids import normalize_condition_id, to_subgraph_id
from payout_assets.validate.payouts import winning_index
from payout_assets.warehouse import chain, tables
from payout_assets.warehouse.store import ClickHouseStore
from payout_standins.goldsky import SimulatorConfig, Universe, run_simulator
from payout_standins.polygon import LocalPolygon
from payout_standins.polygon.demo_chain import DEMO_RANGE_BLOCKS, seed_chain

SEED_CHUNK = 50_000
POLYGON_STATE = "polygon-chain.json"  # the demo's local chain, which `make dev` serves again
DEMO_IDS = 20_000
DEMO_LATENCY_MS = 50.0
_MALFORMED = ["", "0x", "not-a-condition", "0x1234", "zz" * 32, "0x" + "g" * 64, "12345678" * 9]


def demo_ids(universe: Universe, count: int) -> Iterator[str]:
    """``count`` raw ids as a trades table would hold them: ~94% known to the subgraph, ~5%
    unknown, ~1% malformed; every 7th known id spelled with ``0x`` and every 11th in capitals."""
    for i in range(count):
        if i % 100 == 99:
            yield _MALFORMED[(i // 100) % len(_MALFORMED)] + (f"-{i}" if i % 200 == 99 else "")
        elif i % 20 == 19:
            yield universe.unknown_id(i).removeprefix("0x")
        else:
            cid = universe.condition_id(i)
            text = cid if i % 7 == 0 else cid.removeprefix("0x")
            yield text.upper() if i % 11 == 0 else text


def seed_store(
    store: ClickHouseStore, universe: Universe, count: int, primary_share: float = 0.15
) -> int:
    """Create and fill ``trades_raw`` and ``market_resolutions_final``; returns primary rows.

    The primary source covers ``primary_share`` of the resolved known ids, with the subgraph's
    own vectors (so the two sources agree), in the production column types.
    """
    tables.create_source_tables(store)
    now = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
    every = max(1, round(1 / primary_share)) if primary_share > 0 else 0
    trades: list[tuple[object, ...]] = []
    primary: list[tuple[object, ...]] = []
    primary_rows = 0

    def flush() -> None:
        store.insert("default.trades_raw", trades, ["trade_id", "condition_id", "traded_at"])
        store.insert(
            "default.market_resolutions_final",
            primary,
            [
                "condition_id_norm",
                "payout_numerators",
                "payout_denominator",
                "outcome_count",
                "winning_outcome",
                "source",
                "version",
                "resolved_at",
                "updated_at",
                "winning_index",
            ],
        )
        trades.clear()
        primary.clear()

    for i, raw in enumerate(demo_ids(universe, count)):
        trades.append((i, raw, now))
        cid = normalize_condition_id(raw)
        if every and i % every == 0 and isinstance(cid, str):
            state = universe.state(to_subgraph_id(cid))
            if state is not None and state.resolved and state.numerators is not None:
                nums = [int(n) for n in state.numerators]
                den = int(state.denominator or 0)
                if den <= 255:
                    w = winning_index(nums, den)
                    primary.append(
                        (
                            state.id.removeprefix("0x"),
                            nums,
                            den,
                            len(nums),
                            "Yes" if w == 0 else "No" if w == 1 else "50/50",
                            "clob",
                            1,
                            None,
                            now,
                            max(w, 0),
                        )
                    )
                    primary_rows += 1
        if len(trades) >= SEED_CHUNK:
            flush()
    flush()
    return primary_rows


def reset_home(home: Path) -> None:
    """Forget a previous demo: the embedded store and the instance's run history."""
    for name in (
        "clickhouse",
        "clickhouse.lock",
        "history",
        "storage",
        "schedules",
        "logs",
        POLYGON_STATE,
        ".nux",
        ".telemetry",
    ):
        target = home / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def demo_simulator_config(
    universe_ids: int = DEMO_IDS, latency_ms: float = DEMO_LATENCY_MS
) -> SimulatorConfig:
    """The demo's subgraph: twice as many conditions as the trades table knows, answering with a
    plausible latency. ``make dev`` serves the same one, so the demo's store matches it."""
    return SimulatorConfig(size=universe_ids * 2, latency_ms=latency_ms, jitter_ms=latency_ms / 3)


def use_local_chain(url: str) -> None:
    """Point the chain source at the demo's local Polygon (its history starts at block 0)."""
    os.environ["POLYGON_RPC_URL"] = url
    os.environ["POLYGON_START_BLOCK"] = "0"
    os.environ["POLYGON_RANGE_BLOCKS"] = str(DEMO_RANGE_BLOCKS)


def source_rows(store: ClickHouseStore) -> list[tuple[str, str]]:
    """The backfill's ids by the source that resolved them (the ledger beside the truth view),
    and the disagreements between sources, for the demo's report."""
    snapshot = tables.current_snapshot(store)
    by_source = chain.resolved_by(store, snapshot.generation) if snapshot else {}
    return [
        *(
            (f"ids resolved by {source or 'no source yet'}", f"{n:,}")
            for source, n in sorted(by_source.items(), key=lambda item: item[0] or "~")
        ),
        ("payout_backfill.source_disagreements", f"{chain.disagreement_count(store):,}"),
    ]


def run_demo(universe_ids: int, shards: int, max_rps: float, latency_ms: float) -> int:
    dsn = os.environ.get("CLICKHOUSE_DSN", "")
    if dsn and not dsn.startswith("chdb://"):
        print("the demo seeds an embedded store; unset CLICKHOUSE_DSN (it points at a server)")
        return 2
    home = ensure_home()
    reset_home(home)
    os.environ.pop("CLICKHOUSE_DSN", None)
    os.environ["PAYOUT_SHARDS"] = str(shards)
    os.environ["GOLDSKY_MAX_RPS"] = str(max_rps)
    os.environ.pop("PAYOUT_IDS_FILE", None)
    with (
        run_simulator(demo_simulator_config(universe_ids, latency_ms)) as sim,
        LocalPolygon(state_path=home / POLYGON_STATE) as node,
    ):
        os.environ["GOLDSKY_ENDPOINT"] = sim.url
        use_local_chain(node.url)
        store = ClickHouseStore(f"chdb://{home / 'clickhouse'}")
        print(f"simulator: {sim.url}")
        print(f"seeding {universe_ids:,} trades_raw ids into {store.display_dsn}")
        primary = seed_store(store, sim.universe, universe_ids)
        print(f"market_resolutions_final already covers {primary:,} conditions")
        seeded = seed_chain(node, sim.universe, universe_ids)
        print(
            f"local Polygon {node.url}: {seeded.resolutions:,} ConditionResolution events up to "
            f"block {seeded.last_block:,} ({seeded.disagreeing} deliberately disagree with the "
            f"subgraph, {seeded.chain_only:,} are resolved on chain only)"
        )
        started = time.monotonic()
        progress = Progress.for_stdout(as_json=False)
        outcome = run_backfill(fresh=True, say=progress.say, progress=progress)
        wall = time.monotonic() - started
        stats = sim.traffic.stats()
    _, counts = ledger_counts(store)
    rows = summary_rows(
        counts,
        {
            "requests sent": f"{stats['requests']:,}",
            "ids requested (distinct)": f"{stats['ids_requested_distinct']:,}",
            "largest `first`": f"{stats['max_first']:,}",
            "wall time": f"{wall:.1f} s",
        },
    )
    print(render_table(rows))
    print(render_table(source_rows(store)))
    print(f"Dagster runs are in {home}: `make dev` shows them at http://127.0.0.1:3000")
    still_open = open_ids(counts)
    if still_open:
        print(open_ids_line(still_open))
    ok = outcome.ok and not still_open
    print("OK" if ok else f"FAILED (logs: {outcome.log_dir})")
    return 0 if ok else 1
