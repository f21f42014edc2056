"""``payout-backfill``: run, and the operator commands preflight, status and verify (the demo
and the stand-ins are ``python -m payout_standins``). Each command imports its module only when chosen, so ``--help`` stays quick."""

from __future__ import annotations

import argparse
import sys

from payout_assets.settings import clickhouse_dsn, dagster_home


def _cmd_run(args: argparse.Namespace) -> int:
    from payout_assets.cli.progress import Progress
    from payout_assets.cli.report import (
        ledger_counts,
        open_ids,
        open_ids_line,
        render_table,
        summary_rows,
    )
    from payout_assets.cli.run import run_backfill
    from payout_assets.warehouse.store import ClickHouseStore, StoreError

    progress = Progress.for_stdout(args.json)
    outcome = run_backfill(
        fresh=args.fresh, max_parallel=args.parallel, say=progress.say, progress=progress
    )
    store = ClickHouseStore(clickhouse_dsn())
    try:
        _, counts = ledger_counts(store)
    except StoreError as exc:  # e.g. the first snapshot failed before it made any table
        progress.say(f"the ledger cannot be read: {exc}")
        counts = {}
    # The ledger, not the runs' exit codes, says whether every id was fetched: runs can all
    # succeed while the store's newest snapshot holds ids no shard asked for.
    still_open = open_ids(counts)
    ledger_ok = (bool(counts) and not still_open) or "goldsky" not in outcome.sources
    ok = outcome.ok and ledger_ok
    if args.json:
        progress.summary({**outcome.as_summary(counts), "ok": ok, "open_ids": still_open})
        return 0 if ok else 1
    extra = {f"seconds: {k}": f"{v:.1f}" for k, v in outcome.seconds.items()}
    if counts:
        print(render_table(summary_rows(counts, extra)))
    if still_open:
        print(open_ids_line(still_open))
    for source, why in outcome.sources_failed.items():
        print(f"source {source} FAILED: {why}")
    print("OK" if ok else f"FAILED (logs: {outcome.log_dir})")
    return 0 if ok else 1


def _cmd_preflight(_args: argparse.Namespace) -> int:
    from payout_assets.cli.preflight import run_preflight_cli

    return run_preflight_cli()


def _cmd_status(args: argparse.Namespace) -> int:
    from payout_assets.cli.status import run_status

    return run_status(watch=args.watch, as_json=args.json)


def _cmd_verify(_args: argparse.Namespace) -> int:
    from payout_assets.cli.verify import run_verify

    return run_verify()


def _cmd_schema(_args: argparse.Namespace) -> int:
    from payout_assets.settings import clickhouse_cluster
    from payout_assets.warehouse.ddl import Target
    from payout_assets.warehouse.schema import schema_statements

    for statement in schema_statements(Target(clickhouse_cluster())):
        print(statement.strip() + ";\n")
    return 0


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a whole number of processes, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"must be at least 1 (shard processes at once), got {value}"
        )
    return value


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
        "--parallel",
        type=_at_least_one,
        default=None,
        metavar="N",
        help="shard processes at once (default: all)",
    )
    run.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line on stdout: messages, progress ticks, a final summary",
    )
    run.set_defaults(func=_cmd_run)

    preflight = sub.add_parser(
        "preflight",
        help="check ClickHouse, the source tables, the id source and the subgraph (exit 1 on FAIL)",
    )
    preflight.set_defaults(func=_cmd_preflight)

    status = sub.add_parser(
        "status", help="per-shard state and progress of the backfill (safe while it runs)"
    )
    status.add_argument(
        "--watch",
        type=_positive,
        default=None,
        metavar="N",
        help="refresh every N seconds until Ctrl+C",
    )
    status.add_argument("--json", action="store_true", help="one JSON object per refresh")
    status.set_defaults(func=_cmd_status)

    verify = sub.add_parser(
        "verify", help="validate what the backfill wrote (the post-run checks; exit 1 on failure)"
    )
    verify.set_defaults(func=_cmd_verify)

    schema = sub.add_parser(
        "schema",
        help="print the schema's DDL as the store would get it (CLICKHOUSE_CLUSTER: ON CLUSTER)",
    )
    schema.set_defaults(func=_cmd_schema)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if refusal := _refusal(args.command):
        print(f"payout-backfill {args.command}: " + refusal, file=sys.stderr)
        return 2
    return int(args.func(args))


def _refusal(command: str) -> str | None:
    """Why the command must not start: its settings (``payout_assets.settings``), and for
    ``run`` another run holding the store (``payout_assets.cli.run_lock``). None to go ahead."""
    from payout_assets.settings import command_problems

    if problems := command_problems(command):
        return f"\npayout-backfill {command}: ".join(problems)
    if command == "run":
        from payout_assets.cli import run_lock
        from payout_assets.settings import instance_db_url
        from payout_assets.warehouse.store import ClickHouseStore

        store = ClickHouseStore(clickhouse_dsn())
        if busy := run_lock.acquire(store, instance_db_url()):
            return busy.message(store.display_dsn)
    return None


if __name__ == "__main__":
    sys.exit(main())
