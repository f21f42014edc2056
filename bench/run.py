"""``make bench``: the full backfill, through Dagster, against the request-rate floor.

For each scenario it makes a fresh DAGSTER_HOME and embedded store, starts the simulator in its
own process with a server-side rate limit equal to GOLDSKY_MAX_RPS (a client that exceeds it gets
429s, which are counted), writes the ids as PAYOUT_IDS_FILE, runs ``payout-backfill run`` as a
subprocess exactly as an operator would, samples the memory of every process of its tree, and
reads the simulator's traffic log afterwards. The floor for a scenario is
``ceil(ids / 1000) / max_rps + latency``: the time the endpoint's rate limit alone imposes.

Scenarios, in order:

* ``fixed``: a tiny id set with the same settings. Its ``wall - floor`` is the fixed Dagster
  start-up cost (CLI, forkserver warm-up, run launches, per-run engine opens and checks), which
  does not grow with ids; the target is ``wall <= 1.3 x floor + fixed``.
* ``main``: ``--ids`` (170,448), then the naive baseline (``bench.baseline``) against the same
  simulator, for the speed-up.
* ``scale``: ``--scale-ids`` (1,000,000): cost linear in ids, memory flat per shard.
* regressions (``--regression serial`` / ``no-first``): the same as ``main`` with shards
  serialised or ``first`` dropped, to show that the ratio catches them.

Then the ClickHouse ingest throughput of the embedded engine (``bench.store_ops ingest``).
Prints markdown tables and writes ``<out>/latest.json`` and ``<out>/latest.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from bench.baseline import run_baseline
from bench.chain import chain_table, run_chain_bench
from bench.procs import TreeSampler
from bench.report import build_report
from bench.scenario import (
    SEED,
    Outcome,
    Scenario,
)
from bench.sim import PIPELINE_BIN, PROJECT_ROOT, VENV_BIN, SimulatorProcess, pipeline_env
from payout_standins.goldsky import Universe
from payout_standins.procs import stop_group


def _write_ids(universe: Universe, count: int, path: Path) -> int:
    """The ids file (one 64-hex id per line, no ``0x``) and how many of them are resolved."""
    resolved = 0
    with path.open("w", encoding="ascii") as out:
        for start in range(0, count, 50_000):
            lines = []
            for i in range(start, min(count, start + 50_000)):
                cid = universe.condition_id(i)
                state = universe.state(cid)
                resolved += state is not None and state.numerators is not None
                lines.append(cid[2:])
            out.write("\n".join(lines) + "\n")
    return resolved


def _child_env(sc: Scenario, home: Path, url: str, ids_file: Path, tmp: Path) -> dict[str, str]:
    env = pipeline_env(
        home,
        tmp,
        GOLDSKY_ENDPOINT=url,
        PAYOUT_SHARDS=str(sc.shards),
        PAYOUT_SOURCES="goldsky",  # the subgraph scenarios; the chain's are measured apart
        GOLDSKY_MAX_RPS=str(sc.max_rps),
        PAYOUT_IDS_FILE=str(ids_file),
    )
    if sc.concurrency:
        env["GOLDSKY_CONCURRENCY"] = str(sc.concurrency)
    return env


def _command(sc: Scenario) -> list[str]:
    if sc.regression == "no-first":
        return [str(PIPELINE_BIN / "python"), "-m", "bench.regress", "no-first", "run"]
    command = [str(PIPELINE_BIN / "payout-backfill"), "run"]
    if sc.regression == "serial":
        command += ["--parallel", "1"]
    return command


_ROW = re.compile(r"^\|\s*(.+?)\s*\|\s*(.+?)\s*\|$")
_LEDGER_LABELS = {
    "ids in (distinct)": "ids",
    "already resolved": "already_resolved",
    "resolved and ingested": "ingested",
    "unresolved": "unresolved",
    "not found": "not_found",
    "rejected": "rejected",
    "failed": "failed",
    "invalid": "invalid_id",
}


def _parse_summary(lines: Sequence[str]) -> tuple[dict[str, float], dict[str, int]]:
    """The CLI's closing table: ``seconds: <stage>`` rows and the ledger counts."""
    stages: dict[str, float] = {}
    ledger: dict[str, int] = {}
    for line in lines:
        match = _ROW.match(line.strip())
        if not match:
            continue
        key, value = match.groups()
        if key.startswith("seconds: "):
            stages[key.removeprefix("seconds: ")] = float(value)
        elif key in _LEDGER_LABELS:
            ledger[_LEDGER_LABELS[key]] = int(value.replace(",", ""))
    return stages, ledger


def _timeline(
    records: list[dict[str, Any]], launched_at: float, ended_at: float
) -> dict[str, float]:
    """When requests happened, relative to the CLI's launch (from the simulator's log)."""
    if not records:
        return {}
    payouts = [r for r in records if "conditions" in r["fields"]]
    out = {"first_request_s": records[0]["time"] - launched_at}
    if payouts:
        first = payouts[0]["time"] - payouts[0]["duration_ms"] / 1000
        last = max(r["time"] for r in payouts)
        out["first_payout_request_s"] = first - launched_at
        out["last_payout_answer_s"] = last - launched_at
        out["fetch_window_s"] = last - first
        out["after_last_answer_s"] = ended_at - last
    return out


def _busy_cpu_s() -> float:
    """CPU seconds every core of the machine has spent busy since boot."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)


def _own_cpu_s() -> float:
    """CPU of this process and every descendant, living or reaped: a reaped process's time is
    in its reaper's children times, so each CPU second is counted exactly once."""
    mine = os.times()
    total = mine.user + mine.system + mine.children_user + mine.children_system
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += sum(child.cpu_times()[:4])
    return total


def _side_cpu_s(exclude: int) -> float:
    """CPU of this process (its own threads: the sampler, the output reader) and of its other
    children (the simulator), each process's own seconds, not those of children it reaped."""
    mine = os.times()
    total = mine.user + mine.system
    for child in psutil.Process().children():
        if child.pid != exclude:
            with contextlib.suppress(psutil.Error):
                total += sum(child.cpu_times()[:4])
    return total


def foreign_load(seconds: float = 2.0) -> float:
    """Cores kept busy by processes that are not the benchmark's, over ``seconds``."""
    busy, own = _busy_cpu_s(), _own_cpu_s()
    time.sleep(seconds)
    return max(0.0, (_busy_cpu_s() - busy) - (_own_cpu_s() - own)) / seconds


def wait_for_quiet(limit_s: float, threshold: float = 0.25) -> float:
    """Wait (at most ``limit_s``) until other processes leave the cores alone; this machine
    has two, and a test suite running next to the benchmark would be measured as our cost."""
    deadline = time.monotonic() + limit_s
    load = foreign_load()
    while load > threshold and time.monotonic() < deadline:
        print(f"   waiting: other processes keep {load:.2f} cores busy", flush=True)
        time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))
        load = foreign_load()
    return load


def run_scenario(
    sc: Scenario, workdir: Path, echo: bool = True, py_spy: Path | None = None
) -> Outcome:
    """Run one scenario end to end; never raises for a failed backfill (the outcome says)."""
    outcome = Outcome(sc)
    tmp = workdir / sc.name
    home = tmp / "dagster_home"
    home.mkdir(parents=True)
    shutil.copyfile(PROJECT_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    universe = Universe(sc.ids, SEED)
    ids_file = tmp / "ids.txt"
    outcome.expected_resolved = _write_ids(universe, sc.ids, ids_file)
    seeded = subprocess.run(
        [
            str(VENV_BIN / "python"),
            "-m",
            "bench.store_ops",
            "seed",
            "--dsn",
            f"chdb://{home / 'clickhouse'}",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if seeded.returncode != 0:
        outcome.error = f"seeding failed: {seeded.stderr[-2000:]}"
        return outcome

    rate_limit = max(1, math.floor(sc.max_rps))
    with SimulatorProcess(
        sc.ids, SEED, sc.latency_ms, sc.jitter_ms, rate_limit, tmp / "simulator.log"
    ) as sim:
        env = _child_env(sc, home, sim.url, ids_file, tmp)
        lines: list[str] = []
        timeout_s = 600 + 5 * sc.floor_s * (10 if sc.regression == "no-first" else 1)
        with (tmp / "cli.stderr").open("wb") as stderr:
            launched_at = time.time()
            started = time.monotonic()
            command = _command(sc)
            if py_spy is not None:  # wall-clock profile of every process of the tree
                command = [
                    str(py_spy),
                    "record",
                    "--subprocesses",
                    "--idle",
                    "--format",
                    "raw",
                    "--rate",
                    "50",
                    "--output",
                    str(workdir / f"profile-{sc.name}.txt"),
                    "--",
                    *command,
                ]
            proc = subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                text=True,
                start_new_session=True,
            )
        sampler = TreeSampler(proc.pid, started).start()
        busy_before, side_before = _busy_cpu_s(), _side_cpu_s(exclude=proc.pid)

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                if echo:
                    print(f"    | {line.rstrip()}", flush=True)

        reader = threading.Thread(target=read, name="cli-stdout", daemon=True)
        reader.start()
        try:
            outcome.exit_code = proc.wait(timeout=timeout_s)
            outcome.wall_s = time.monotonic() - started
        except subprocess.TimeoutExpired:
            outcome.wall_s = time.monotonic() - started
            outcome.error = f"payout-backfill run did not finish within {timeout_s:.0f}s"
        finally:
            ended_at = time.time()
            busy = _busy_cpu_s() - busy_before
            side = _side_cpu_s(exclude=proc.pid) - side_before
            sampler.stop()
            stop_group(proc)  # the CLI's forkserver and any run still alive go with it
            reader.join(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        outcome.processes = sampler.results()
        # The tree's CPU is summed from the sampler, each process's own seconds at its last
        # sample: counting what reaped children add to their parent's times loses every run
        # (the forkserver outlives the CLI and is reaped by init, its runs' CPU with it), which
        # showed this backfill's own shards as a core of "other" load. A process's last
        # sampling interval (0.2 s) is not counted: under 0.05 cores over a scenario.
        tree = sum(p.cpu_s for p in outcome.processes)
        outcome.sampler_cpu_s = sampler.cpu_s
        outcome.other_load_cores = (
            max(0.0, busy - side - tree) / outcome.wall_s if outcome.wall_s else 0
        )
        try:
            _read_after(outcome, sim, lines, home, launched_at, ended_at)
        except OSError as exc:  # e.g. the simulator was killed from outside
            outcome.error = f"{outcome.error or ''} reading the results failed: {exc}".strip()
            return outcome
        if sc.baseline and not outcome.error:
            sim.reset()
            ids = [universe.condition_id(i) for i in range(sc.ids)]
            try:
                result = run_baseline(sim.url, ids)
                outcome.baseline = {**result.to_json(), "traffic": sim.stats()}
            except (OSError, RuntimeError, TimeoutError) as exc:
                outcome.error = f"baseline failed: {exc}"
    return outcome


def _read_after(
    outcome: Outcome,
    sim: SimulatorProcess,
    lines: list[str],
    home: Path,
    launched_at: float,
    ended_at: float,
) -> None:
    """Fill the outcome from the CLI's output, the simulator's log and the run logs."""
    outcome.stages, outcome.ledger = _parse_summary(lines)
    if outcome.exit_code != 0 and outcome.error is None:
        outcome.error = f"payout-backfill run exited {outcome.exit_code} (see {home})"
    logs = sorted((home / "logs").glob("*/"))
    if logs:
        outcome.log_dir = str(logs[-1])
        outcome.client_retries = sum(
            log.read_text(errors="replace").count("goldsky: attempt")
            for log in logs[-1].glob("shard-*.log")
        )
    outcome.traffic = sim.stats()
    outcome.timeline = _timeline(sim.requests(), launched_at, ended_at)


def run_ingest(workdir: Path, rows: int) -> dict[str, Any]:
    path = workdir / "ingest"
    path.mkdir()
    done = subprocess.run(
        [
            str(VENV_BIN / "python"),
            "-m",
            "bench.store_ops",
            "ingest",
            "--dsn",
            f"chdb://{path / 'clickhouse'}",
            "--rows",
            str(rows),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# -- report ----------------------------------------------------------------------------------


# -- entry point -----------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--ids", type=int, default=170_448, help="0 skips the subgraph runs")
    parser.add_argument("--scale-ids", type=int, default=1_000_000, help="0 skips the scale run")
    parser.add_argument("--fixed-ids", type=int, default=1_000, help="0 skips the fixed-cost run")
    parser.add_argument(
        "--fixed-repeats", type=int, default=2, help="fixed-cost runs; the smallest is used"
    )
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--max-rps", type=float, default=10.0)
    parser.add_argument("--latency-ms", type=float, default=300.0)
    parser.add_argument("--jitter-ms", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=None, help="GOLDSKY_CONCURRENCY")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--regression",
        action="append",
        choices=["serial", "no-first"],
        default=[],
        help="also run the main scenario with this regression injected (repeatable)",
    )
    parser.add_argument("--ingest-rows", type=int, default=200_000, help="0 skips")
    parser.add_argument(
        "--chain-blocks", type=int, default=1_000_000, help="the chain scenario's blocks; 0 skips"
    )
    parser.add_argument("--chain-resolutions", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "results")
    parser.add_argument("--quiet", action="store_true", help="do not echo the CLI's output")
    parser.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        help="run each backfill under this py-spy (record --subprocesses --idle); the collapsed "
        "stacks land in the scratch dir as profile-<scenario>.txt (use with --keep)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=300.0,
        help="before each scenario, wait up to this many seconds for other processes to go idle",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the scratch DAGSTER_HOMEs and logs (for profiling)",
    )
    args = parser.parse_args(argv)
    args.argv = argv
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    common = {
        "shards": args.shards,
        "max_rps": args.max_rps,
        "latency_ms": args.latency_ms,
        "jitter_ms": args.jitter_ms,
        "concurrency": args.concurrency,
    }
    plan: list[Scenario] = []
    for repeat in range(args.fixed_repeats if args.fixed_ids else 0):
        plan.append(Scenario(f"fixed-{repeat + 1}", args.fixed_ids, **common))
    if args.ids:
        plan.append(Scenario("main", args.ids, baseline=not args.skip_baseline, **common))
    for regression in args.regression if args.ids else []:
        plan.append(Scenario(f"regression-{regression}", args.ids, regression=regression, **common))
    if args.scale_ids:
        plan.append(Scenario("scale", args.scale_ids, baseline=not args.skip_baseline, **common))

    outcomes: list[Outcome] = []
    ingest: dict[str, Any] = {}
    chain: dict[str, Any] = {}
    workdir = Path(tempfile.mkdtemp(prefix="payout-bench-"))
    if args.keep:
        print(f"scratch (kept): {workdir}", flush=True)
    try:
        for sc in plan:
            print(
                f"== {sc.name}: {sc.ids:,} ids, {sc.shards} shards, GOLDSKY_MAX_RPS={sc.max_rps:g}, "
                f"latency {sc.latency_ms:g}±{sc.jitter_ms:g} ms, floor {sc.floor_s:.1f} s"
                + (f", regression {sc.regression}" if sc.regression else ""),
                flush=True,
            )
            if args.wait_quiet:
                wait_for_quiet(args.wait_quiet)
            try:
                outcome = run_scenario(sc, workdir, echo=not args.quiet, py_spy=args.py_spy)
            except Exception as exc:  # one broken scenario must not lose the others' figures
                outcome = Outcome(sc, error=f"{type(exc).__name__}: {exc}")
            outcomes.append(outcome)
            print(
                f"   wall {outcome.wall_s:.1f} s (x{outcome.ratio:.2f} floor)"
                + (f", baseline {outcome.baseline['wall_s']:.1f} s" if outcome.baseline else "")
                + (f"; ERROR: {outcome.error}" if outcome.error else ""),
                flush=True,
            )
        if args.ingest_rows:
            print(f"== ClickHouse ingest: {args.ingest_rows:,} staging rows", flush=True)
            ingest = run_ingest(workdir, args.ingest_rows)
        if args.chain_blocks:
            chain = run_chain_bench(
                workdir, args.chain_blocks, args.chain_resolutions, args.max_rps, not args.quiet
            )
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    fixed = [o for o in outcomes if o.scenario.name.startswith("fixed") and not o.error]
    # the smallest: the strictest allowance, and the first run also pays cold page caches
    fixed_s = min((o.wall_s - o.scenario.floor_s for o in fixed), default=None)
    text, data = build_report(outcomes, fixed_s, ingest, args)
    if chain:
        text += "\n\n" + chain_table(chain)
        data["chain"] = chain
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.md").write_text(text + "\n")
    (args.out / "latest.json").write_text(json.dumps(data, indent=2) + "\n")
    print()
    print(text)
    print(f"\nwritten: {args.out / 'latest.md'}, {args.out / 'latest.json'}")
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
