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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.baseline import run_baseline
from bench.procs import ProcessPeak, TreeSampler, stop_group
from bench.sim import PIPELINE_BIN, PROJECT_ROOT, VENV_BIN, SimulatorProcess
from payout_standins.goldsky import Universe

MAX_FIRST = 1000
SEED = 11
# Targets of issue 6
RATIO_SLACK = 1.3
RSS_FLAT_SHARE = 0.10
ANON_LIMIT_MB = 250.0
INGEST_TARGET_ROWS_S = 100_000.0


@dataclass
class Scenario:
    name: str
    ids: int
    shards: int
    max_rps: float
    latency_ms: float
    jitter_ms: float
    regression: str | None = None  # None | serial | no-first
    baseline: bool = False
    concurrency: int | None = None

    @property
    def floor_s(self) -> float:
        return math.ceil(self.ids / MAX_FIRST) / self.max_rps + self.latency_ms / 1000


@dataclass
class Outcome:
    """Everything measured for one scenario (JSON-ready through :meth:`to_json`)."""

    scenario: Scenario
    exit_code: int = -1
    wall_s: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    ledger: dict[str, int] = field(default_factory=dict)
    expected_resolved: int = 0
    traffic: dict[str, Any] = field(default_factory=dict)
    timeline: dict[str, float] = field(default_factory=dict)
    client_retries: int = 0
    processes: list[ProcessPeak] = field(default_factory=list)
    baseline: dict[str, Any] | None = None
    other_load_cores: float | None = None  # CPU others used meanwhile (2 cores in all)
    sampler_cpu_s: float | None = None  # what measuring the tree cost (it shares the 2 cores)
    error: str | None = None
    log_dir: str = ""

    def shard_peaks(self, roles: tuple[str, ...] = ("run", "worker")) -> list[ProcessPeak]:
        """A shard's processes: its Dagster run and the fetch worker the run starts."""
        return [p for p in self.processes if p.role in roles and p.label.startswith("shard-")]

    def peak(self, label: str) -> ProcessPeak | None:
        found = [p for p in self.processes if p.label == label]
        return max(found, key=lambda p: p.peak_rss_mb) if found else None

    @property
    def ratio(self) -> float:
        return self.wall_s / self.scenario.floor_s

    def to_json(self) -> dict[str, Any]:
        sc = self.scenario
        shards = self.shard_peaks()
        return {
            "scenario": sc.__dict__,
            "floor_s": round(sc.floor_s, 3),
            "exit_code": self.exit_code,
            "error": self.error,
            "wall_s": round(self.wall_s, 3),
            "wall_over_floor": round(self.ratio, 3),
            "ids_per_s": round(sc.ids / self.wall_s, 1) if self.wall_s else 0.0,
            "stages_s": {k: round(v, 3) for k, v in self.stages.items()},
            "timeline_s": {k: round(v, 3) for k, v in self.timeline.items()},
            "ledger": self.ledger,
            "expected_resolved": self.expected_resolved,
            "client_retries": self.client_retries,
            "traffic": self.traffic,
            "shard_peak_rss_mb_max": round(max((p.peak_rss_mb for p in shards), default=0), 1),
            "shard_peak_anon_mb_max": round(max((p.peak_anon_mb for p in shards), default=0), 1),
            "processes": [p.to_json() for p in self.processes],
            "baseline": self.baseline,
            "other_load_cores": self.other_load_cores,
            "sampler_cpu_s": self.sampler_cpu_s,
            "log_dir": self.log_dir,
        }


# -- one scenario ----------------------------------------------------------------------------


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
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOLDSKY_", "PAYOUT_"))}
    env.update(
        DAGSTER_HOME=str(home),
        CLICKHOUSE_DSN=f"chdb://{home / 'clickhouse'}",
        GOLDSKY_ENDPOINT=url,
        PAYOUT_SHARDS=str(sc.shards),
        GOLDSKY_MAX_RPS=str(sc.max_rps),
        PAYOUT_IDS_FILE=str(ids_file),
        TMPDIR=str(tmp),  # the client's host-wide limiter file lives here: one per scenario
    )
    if sc.concurrency:
        env["GOLDSKY_CONCURRENCY"] = str(sc.concurrency)
    return env


def _pipeline_env() -> str:
    if PIPELINE_BIN == VENV_BIN:
        return ".venv (the development environment: run `make bench` for a production install)"
    return ".venv-bench (a production install: no dev packages)"


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


def _md(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        return value if isinstance(value, str) else f"{value}"

    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def _mem(p: ProcessPeak) -> str:
    return f"{p.peak_rss_mb:,.0f} / {p.peak_anon_mb:,.0f} / {p.peak_private_mb:,.0f}"


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _git_state() -> dict[str, str]:
    """Which code was measured: other people edit the tree while benchmarks run."""

    def git(*argv: str) -> str:
        done = subprocess.run(
            ["git", *argv], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    return {"head": git("rev-parse", "HEAD"), "status": git("status", "--short")}


def build_report(
    outcomes: list[Outcome], fixed_s: float | None, ingest: dict[str, Any], args: argparse.Namespace
) -> tuple[str, dict[str, Any]]:
    by_name = {o.scenario.name: o for o in outcomes}
    rows = []
    for o in outcomes:
        sc, t = o.scenario, o.traffic
        shards = o.shard_peaks()
        allowed = RATIO_SLACK * sc.floor_s + fixed_s if fixed_s is not None else None
        base = o.baseline
        rows.append(
            [
                sc.name + (" (FAILED)" if o.error else ""),
                f"{sc.ids:,}",
                sc.shards,
                _f(sc.max_rps, 0),
                f"{t.get('requests', 0):,}",
                f"{o.client_retries} / {t.get('rate_limited', 0)}",
                _f(o.wall_s),
                _f(sc.floor_s),
                _f(o.ratio, 2),
                _f((o.wall_s - fixed_s) / sc.floor_s, 2) if fixed_s is not None else "-",
                _f(fixed_s),
                _f(allowed),
                _f(sc.ids / o.wall_s if o.wall_s else None, 0),
                _f(o.ledger.get("ingested", 0) / o.wall_s if o.wall_s else None, 0),
                _f(max((p.peak_rss_mb for p in shards), default=None), 0),
                _f(max((p.peak_anon_mb for p in shards), default=None), 0),
                _f(max((p.peak_private_mb for p in shards), default=None), 0),
                f"{t.get('ids_served_repeated', 0):,}",
                t.get("max_first", 0),
                _f(o.other_load_cores, 2),
                _f(o.sampler_cpu_s, 1),
                _f(base["wall_s"]) if base else "-",
                _f(base["wall_s"] / o.wall_s, 2) + "x" if base and o.wall_s else "-",
            ]
        )
    summary = _md(
        [
            "scenario",
            "ids",
            "shards",
            "max rps",
            "requests",
            "retries / 429s",
            "wall s",
            "floor s",
            "wall/floor",
            "(wall-fixed)/floor",
            "fixed s",
            "1.3xfloor+fixed s",
            "ids/s",
            "resolved rows/s (run)",
            "shard peak RSS MB",
            "shard peak anon MB",
            "shard peak private MB",
            "ids fetched twice",
            "max first",
            "other load (cores)",
            "sampler CPU s",
            "baseline wall s",
            "speed-up",
        ],
        rows,
    )

    stage_rows = []
    for o in outcomes:
        tl = o.timeline
        stage_rows.append(
            [
                o.scenario.name,
                _f(tl.get("first_request_s")),
                _f(o.stages.get("missing_condition_ids")),
                _f(tl.get("first_payout_request_s")),
                _f(o.stages.get("shards")),
                _f(tl.get("fetch_window_s")),
                _f(o.stages.get("vw_resolutions_truth")),
                _f(tl.get("after_last_answer_s")),
                _f(o.wall_s - o.stages["total"] if "total" in o.stages else None),
                _f(o.wall_s),
            ]
        )
    stages = _md(
        [
            "scenario",
            "launch -> 1st request",
            "missing_condition_ids",
            "launch -> 1st payout request",
            "shards stage",
            "fetch window (1st payout request -> last answer)",
            "view stage",
            "last answer -> exit",
            "CLI outside stages",
            "wall",
        ],
        stage_rows,
    )

    mem_rows = []
    for o in outcomes:
        shards = o.shard_peaks()
        cells: list[object] = [o.scenario.name]
        for label in ("cli", "forkserver", "refresh_missing_ids"):
            p = o.peak(label)
            cells.append(_mem(p) if p else "-")
        for role in ("run", "worker"):
            procs = o.shard_peaks((role,))
            cells.append(
                " / ".join(
                    f"{_f(min(getattr(p, a) for p in procs), 0)}-{_f(max(getattr(p, a) for p in procs), 0)}"
                    for a in ("peak_rss_mb", "peak_anon_mb", "peak_private_mb")
                )
                if procs
                else "-"
            )
        cpu: dict[str, float] = {}
        for p in shards:
            cpu[p.label] = cpu.get(p.label, 0.0) + p.cpu_s
        cells.append(_f(max(cpu.values()), 1) if cpu else "-")
        p = o.peak("publish_truth_view")
        cells.append(_mem(p) if p else "-")
        mem_rows.append(cells)
    memory = _md(
        [
            "scenario",
            "CLI",
            "forkserver",
            "missing_condition_ids run",
            "shard runs (min-max)",
            "their fetch workers (min-max)",
            "shard CPU s, run + worker (max)",
            "view run",
        ],
        mem_rows,
    )

    targets: list[list[object]] = []

    def target(name: str, value: float | None, limit: float | None, unit: str, lower: bool) -> None:
        if value is None or limit is None:
            targets.append([name, "-", "-", "not measured", "-"])
            return
        met = value <= limit if lower else value >= limit
        miss = value - limit if lower else limit - value
        targets.append(
            [
                name,
                f"{value:,.1f} {unit}",
                f"{'<=' if lower else '>='} {limit:,.1f} {unit}",
                "met" if met else "MISSED",
                "-" if met else f"{miss:,.1f} {unit}" + (f" ({miss / limit:.0%})" if limit else ""),
            ]
        )

    main = by_name.get("main")
    scale = by_name.get("scale")
    if main:
        target(
            f"wall <= 1.3 x floor + fixed ({main.scenario.ids:,} ids)",
            main.wall_s,
            RATIO_SLACK * main.scenario.floor_s + fixed_s if fixed_s is not None else None,
            "s",
            True,
        )
        if fixed_s is not None:
            target(
                "(wall - fixed) / floor (the same target as a ratio)",
                (main.wall_s - fixed_s) / main.scenario.floor_s,
                RATIO_SLACK,
                "x",
                True,
            )
    if scale:
        target(
            f"wall <= 1.3 x floor + fixed ({scale.scenario.ids:,} ids)",
            scale.wall_s,
            RATIO_SLACK * scale.scenario.floor_s + fixed_s if fixed_s is not None else None,
            "s",
            True,
        )
    if main and scale and main.shard_peaks() and scale.shard_peaks():
        small = max(p.peak_rss_mb for p in main.shard_peaks())
        big = max(p.peak_rss_mb for p in scale.shard_peaks())
        target(
            "shard peak RSS growth 170k -> 1M",
            100 * (big - small) / small,
            100 * RSS_FLAT_SHARE,
            "%",
            True,
        )
    for o in (main, scale):
        if o and o.shard_peaks():
            target(
                f"shard peak anon, RssAnon ({o.scenario.ids:,} ids)",
                max(p.peak_anon_mb for p in o.shard_peaks()),
                ANON_LIMIT_MB,
                "MB",
                True,
            )
            target(
                f"shard peak private, Private_Dirty ({o.scenario.ids:,} ids)",
                max(p.peak_private_mb for p in o.shard_peaks()),
                ANON_LIMIT_MB,
                "MB",
                True,
            )
    target(
        f"ClickHouse ingest, as a shard writes ({ingest.get('flush_rows', 0):,}-row flushes)",
        ingest.get("shard_path_rows_per_s"),
        INGEST_TARGET_ROWS_S,
        "rows/s",
        False,
    )
    target(
        "ClickHouse ingest, one held session",
        ingest.get("held_session_rows_per_s"),
        INGEST_TARGET_ROWS_S,
        "rows/s",
        False,
    )
    for o in outcomes:
        target(
            f"ids fetched twice ({o.scenario.name})",
            float(o.traffic.get("ids_served_repeated", 0)),
            0.0,
            "ids",
            True,
        )
        ingested = o.ledger.get("ingested")
        if ingested is not None and o.scenario.regression is None:
            target(
                f"resolved ids lost ({o.scenario.name})",
                float(o.expected_resolved - ingested),
                0.0,
                "ids",
                True,
            )
    target_md = _md(["target", "measured", "target", "status", "missed by"], targets)

    ingest_md = _md(
        ["ClickHouse (embedded chdb) write path", "rows", "seconds", "rows/s"],
        [
            [
                f"stage_rows in {ingest.get('flush_rows', 0):,}-row flushes, one engine session each (the shard's path)",
                f"{ingest.get('rows', 0):,}",
                _f(ingest.get("shard_path_s"), 2),
                _f(ingest.get("shard_path_rows_per_s"), 0),
            ],
            [
                "same flushes inside one held session",
                f"{ingest.get('rows', 0):,}",
                _f(ingest.get("held_session_s"), 2),
                _f(ingest.get("held_session_rows_per_s"), 0),
            ],
            [
                "one bulk insert",
                f"{ingest.get('rows', 0):,}",
                _f(ingest.get("bulk_s"), 2),
                _f(ingest.get("bulk_rows_per_s"), 0),
            ],
            [
                "ingest_shard INSERT...SELECT (staging -> resolutions_external_ingest + ledger)",
                f"{ingest.get('ingest_select_rows', 0):,}",
                _f(ingest.get("ingest_select_s"), 2),
                _f(ingest.get("ingest_select_rows_per_s"), 0),
            ],
            [
                "engine session open + close (lock, chdb connect, close)",
                "-",
                _f(ingest.get("engine_open_close_s"), 3),
                "-",
            ],
        ],
    )

    scaling = ""
    if main and scale and fixed_s is not None:
        per_k = [
            (
                o.scenario.name,
                (o.wall_s - fixed_s) / o.scenario.ids * 1000,
                o.traffic.get("requests", 0) / o.scenario.ids * 1000,
            )
            for o in (main, scale)
        ]
        scaling = _md(
            ["scenario", "(wall - fixed) s per 1,000 ids", "requests per 1,000 ids"],
            [[n, _f(a, 3), _f(b, 3)] for n, a, b in per_k],
        )

    git_state = _git_state()
    command = "make bench  # .venv/bin/python -m bench.run " + " ".join(args.argv)
    text = "\n\n".join(
        part
        for part in [
            f"# payout-backfill benchmark\n\n`{command.strip()}` on {os.cpu_count()} cores, "
            f"code at {git_state['head'][:10]}"
            f"{' + uncommitted changes' if git_state['status'] else ''}, "
            f"the backfill run from {_pipeline_env()}, "
            f"latency {args.latency_ms:g} ms ± {args.jitter_ms:g} ms, server-side rate limit = "
            f"GOLDSKY_MAX_RPS; floor = ceil(ids/1000) / max_rps + latency; fixed = wall - floor "
            f"of the `fixed` scenario ({args.fixed_ids:,} ids); baseline = 4 workers, one request "
            "at a time, 500 ms pause, 1,000 ids with `first`, fetch only (no ClickHouse).",
            summary,
            "## Targets\n\n" + target_md,
            "## Stages (seconds from the CLI's launch)\n\n" + stages,
            "## Peak memory, MB: RSS (VmHWM) / anon (RssAnon) / private (Private_Dirty)\n\n"
            "A fork's RssAnon includes the forkserver's heap, shared copy-on-write; private is "
            "what the process alone holds. RSS - anon is mostly the embedded engine's library, "
            "file-backed and shared. A shard is two processes: its Dagster run (a fork) and the "
            "fetch worker the run starts (a new process without Dagster); the per-shard targets "
            "take the larger of the two.\n\n" + memory,
            "## ClickHouse write throughput\n\n" + ingest_md,
            ("## Scaling\n\n" + scaling) if scaling else "",
        ]
        if part
    )
    data = {
        "command": command,
        "git": git_state,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpu_count": os.cpu_count(),
        "pipeline_env": _pipeline_env(),
        "fixed_startup_s": fixed_s,
        "targets": [
            dict(zip(["target", "measured", "limit", "status", "missed_by"], t, strict=True))
            for t in targets
        ],
        "scenarios": [o.to_json() for o in outcomes],
        "ingest": ingest,
    }
    return text, data


# -- entry point -----------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--ids", type=int, default=170_448)
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
    plan.append(Scenario("main", args.ids, baseline=not args.skip_baseline, **common))
    for regression in args.regression:
        plan.append(Scenario(f"regression-{regression}", args.ids, regression=regression, **common))
    if args.scale_ids:
        plan.append(Scenario("scale", args.scale_ids, baseline=not args.skip_baseline, **common))

    outcomes: list[Outcome] = []
    ingest: dict[str, Any] = {}
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
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    fixed = [o for o in outcomes if o.scenario.name.startswith("fixed") and not o.error]
    # the smallest: the strictest allowance, and the first run also pays cold page caches
    fixed_s = min((o.wall_s - o.scenario.floor_s for o in fixed), default=None)
    text, data = build_report(outcomes, fixed_s, ingest, args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.md").write_text(text + "\n")
    (args.out / "latest.json").write_text(json.dumps(data, indent=2) + "\n")
    print()
    print(text)
    print(f"\nwritten: {args.out / 'latest.md'}, {args.out / 'latest.json'}")
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
