"""ClickHouse steps of the benchmark, each run as ``python -m bench.store_ops ...`` in a child.

Why a child process: the embedded engine (chdb) holds one data directory per process and keeps
~80 MB of heap and ~210 MB of library mapped once opened; doing this in the benchmark's own
process would inflate what the sampler sees and pin the engine to the first store it opened.

``seed`` creates the production source tables (``market_resolutions_final`` left empty, so every
id of the ids file is missing). ``ingest`` measures write throughput on the embedded engine the
way a shard writes (``tables.stage_rows`` in flushes of ``shard.FLUSH_ROWS`` rows, one engine
session each), then inside one held session, then the in-engine ``INSERT ... SELECT`` that the
``resolutions_external_ingest`` asset runs. Each prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from payout_assets.sources.goldsky.shard import FLUSH_ROWS
from payout_assets.warehouse import tables
from payout_assets.warehouse.store import ClickHouseStore


def seed(dsn: str) -> dict[str, Any]:
    store = ClickHouseStore(dsn)
    started = time.perf_counter()
    tables.create_source_tables(store)
    rows = store.query_rows("SELECT count() FROM default.market_resolutions_final")[0][0]
    return {"seconds": time.perf_counter() - started, "market_resolutions_final_rows": int(rows)}


def _staging_rows(count: int, shard: int, run_id: str, generation: str) -> list[tuple[Any, ...]]:
    """Rows shaped like a shard's staged rows: ~75% resolved, the rest unresolved."""
    now = datetime.now(UTC)
    out: list[tuple[Any, ...]] = []
    for i in range(count):
        cid = f"{i:064x}"
        if i % 4:
            payout = ("resolved", "", [1, 0], 1, 0, now, ["1", "0"], "1")
        else:
            payout = ("unresolved", "", [], 0, -1, None, [], "")
        out.append((shard, run_id, generation, cid, *payout, 50_000_000, now))
    return out


def ingest(dsn: str, rows: int) -> dict[str, Any]:
    store = ClickHouseStore(dsn)
    tables.create_source_tables(store)
    tables.ensure_schema(store)
    generation = str(uuid.uuid4())
    result: dict[str, Any] = {"rows": rows, "flush_rows": FLUSH_ROWS}

    opened = time.perf_counter()
    for _ in range(5):
        with store.session():
            pass
    result["engine_open_close_s"] = (time.perf_counter() - opened) / 5

    # 1. as a shard writes: one engine session (lock, open, insert, close) per flush
    run_a = str(uuid.uuid4())
    batch = _staging_rows(rows, 0, run_a, generation)
    started = time.perf_counter()
    for start in range(0, rows, FLUSH_ROWS):
        tables.stage_rows(store, batch[start : start + FLUSH_ROWS])
    seconds = time.perf_counter() - started
    result["shard_path_s"] = seconds
    result["shard_path_rows_per_s"] = rows / seconds

    # 2. the same flushes inside one held session: the insert alone
    run_b = str(uuid.uuid4())
    batch = _staging_rows(rows, 1, run_b, generation)
    with store.session():
        started = time.perf_counter()
        for start in range(0, rows, FLUSH_ROWS):
            tables.stage_rows(store, batch[start : start + FLUSH_ROWS])
        seconds = time.perf_counter() - started
    result["held_session_s"] = seconds
    result["held_session_rows_per_s"] = rows / seconds

    # 3. one bulk insert of every row
    run_c = str(uuid.uuid4())
    batch = _staging_rows(rows, 2, run_c, generation)
    with store.session():
        started = time.perf_counter()
        tables.stage_rows(store, batch)
        seconds = time.perf_counter() - started
    result["bulk_s"] = seconds
    result["bulk_rows_per_s"] = rows / seconds
    del batch

    # 4. the ingest asset's in-engine copy (staging -> resolutions_external_ingest + ledger)
    with store.session():
        started = time.perf_counter()
        tables.ingest_shard(store, 0, run_a)
        seconds = time.perf_counter() - started
        resolved = store.query_rows(
            "SELECT count() FROM payout_backfill.goldsky_payouts "
            "WHERE shard = 0 AND outcome = 'resolved'"
        )[0][0]
    result["ingest_select_s"] = seconds
    result["ingest_select_rows"] = int(resolved)
    result["ingest_select_rows_per_s"] = int(resolved) / seconds if seconds else 0.0
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store_ops")
    sub = parser.add_subparsers(dest="command", required=True)
    p_seed = sub.add_parser("seed")
    p_seed.add_argument("--dsn", required=True)
    p_ingest = sub.add_parser("ingest")
    p_ingest.add_argument("--dsn", required=True)
    p_ingest.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args(argv)
    out = seed(args.dsn) if args.command == "seed" else ingest(args.dsn, args.rows)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
