"""``python -m payout_standins``: the demo (``make demo``), the development UI (``make dev``) and
the subgraph stand-in in the foreground. Each command imports its module only when chosen."""

from __future__ import annotations

import argparse
import sys

from payout_assets.settings import command_problems


def _cmd_demo(args: argparse.Namespace) -> int:
    from payout_standins.demo import run_demo

    return run_demo(
        universe_ids=args.ids, shards=args.shards, max_rps=args.max_rps, latency_ms=args.latency_ms
    )


def _cmd_dev(args: argparse.Namespace) -> int:
    from payout_standins.dev import run_dev

    return run_dev(port=args.port)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from payout_standins.goldsky import SimulatorConfig, serve_forever

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
        prog="python -m payout_standins",
        description="The demo, the development UI, and the local stand-ins for Goldsky.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="seed an embedded store, start the simulator, run the backfill"
    )
    demo.add_argument("--ids", type=int, default=20_000, help="size of the trades_raw id universe")
    demo.add_argument("--shards", type=int, default=8)
    demo.add_argument("--max-rps", type=float, default=10.0)
    demo.add_argument("--latency-ms", type=float, default=50.0)
    demo.set_defaults(func=_cmd_demo)

    dev = sub.add_parser(
        "dev",
        help="the Dagster UI and daemon on 127.0.0.1 (with the simulator if no endpoint is set)",
    )
    dev.add_argument("--port", type=int, default=3000)
    dev.set_defaults(func=_cmd_dev)

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
    if problems := command_problems(args.command):
        print(f"{args.command}: " + f"\n{args.command}: ".join(problems), file=sys.stderr)
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
