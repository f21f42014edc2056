"""``payout-backfill``: run, demo, simulate (and the operator commands)."""

from __future__ import annotations

import argparse
import sys

from payout_assets.config import dagster_home, default_clickhouse_dsn


def _cmd_run(args: argparse.Namespace) -> int:
    import os

    from payout_assets.cli.report import ledger_counts, render_table, summary_rows
    from payout_assets.cli.run import run_backfill
    from payout_assets.write.store import ClickHouseStore

    outcome = run_backfill(fresh=args.fresh, max_parallel=args.parallel)
    store = ClickHouseStore(os.environ.get("CLICKHOUSE_DSN") or default_clickhouse_dsn())
    _, counts = ledger_counts(store)
    extra = {f"seconds: {k}": f"{v:.1f}" for k, v in outcome.seconds.items()}
    print(render_table(summary_rows(counts, extra)))
    print("OK" if outcome.ok else f"FAILED (logs: {outcome.log_dir})")
    return 0 if outcome.ok else 1


def _cmd_demo(args: argparse.Namespace) -> int:
    from payout_assets.cli.demo import run_demo

    return run_demo(
        universe_ids=args.ids, shards=args.shards, max_rps=args.max_rps, latency_ms=args.latency_ms
    )


def _cmd_simulate(args: argparse.Namespace) -> int:
    from payout_assets.simulator import SimulatorConfig, serve_forever

    serve_forever(
        SimulatorConfig(
            size=args.size,
            seed=args.seed,
            port=args.port,
            latency_ms=args.latency_ms,
            jitter_ms=args.jitter_ms,
            dialect=args.dialect,
            rate_limit=(args.rate_limit, 1.0) if args.rate_limit else None,
        )
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="payout-backfill",
        description="Backfill Polymarket payout vectors from Goldsky into ClickHouse, with Dagster.",
        epilog=f"DAGSTER_HOME={dagster_home()}",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run", help="materialise the snapshot, every shard not yet done, then the view"
    )
    run.add_argument(
        "--fresh", action="store_true", help="take a new snapshot even if a backfill is unfinished"
    )
    run.add_argument(
        "--parallel", type=int, default=None, help="shard processes at once (default: all)"
    )
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser(
        "demo", help="seed an embedded store, start the simulator, run the backfill"
    )
    demo.add_argument("--ids", type=int, default=20_000, help="size of the trades_raw id universe")
    demo.add_argument("--shards", type=int, default=8)
    demo.add_argument("--max-rps", type=float, default=10.0)
    demo.add_argument("--latency-ms", type=float, default=50.0)
    demo.set_defaults(func=_cmd_demo)

    sim = sub.add_parser(
        "simulate", help="run the local Goldsky/graph-node simulator in the foreground"
    )
    sim.add_argument(
        "--size", type=int, default=200_000, help="conditions in the simulated subgraph"
    )
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--port", type=int, default=8765)
    sim.add_argument("--latency-ms", type=float, default=0.0)
    sim.add_argument("--jitter-ms", type=float, default=0.0)
    sim.add_argument("--dialect", choices=["pnl", "legacy"], default="pnl")
    sim.add_argument(
        "--rate-limit", type=int, default=0, help="server-side requests per second (0: none)"
    )
    sim.set_defaults(func=_cmd_simulate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
