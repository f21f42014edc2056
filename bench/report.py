"""The benchmark's report: markdown tables a person reads and the JSON the next run compares with."""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from bench.procs import ProcessPeak
from bench.scenario import (
    ANON_LIMIT_MB,
    CPU_LIMIT_S,
    FIXED_LIMIT_S,
    INGEST_TARGET_ROWS_S,
    RATIO_SLACK,
    RSS_FLAT_SHARE,
    Outcome,
    pipeline_env,
)
from bench.sim import PROJECT_ROOT


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


def summary_table(outcomes: list[Outcome], fixed_s: float | None) -> str:
    """One row per scenario: requests, wall against floor, throughput, shard memory, speed-up."""
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
    return summary


def stages_table(outcomes: list[Outcome]) -> str:
    """Where the wall time goes, in seconds from the CLI's launch."""
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
    return stages


def memory_table(outcomes: list[Outcome]) -> str:
    """Peak memory of every kind of process of the backfill."""
    mem_rows = []
    for o in outcomes:
        shards = o.shard_peaks()
        cells: list[object] = [o.scenario.name]
        for label in ("cli", "forkserver", "refresh_missing_ids"):
            p = o.peak(label)
            cells.append(_mem(p) if p else "-")
        cells.append(
            " / ".join(
                f"{_f(min(getattr(p, a) for p in shards), 0)}-{_f(max(getattr(p, a) for p in shards), 0)}"
                for a in ("peak_rss_mb", "peak_anon_mb", "peak_private_mb")
            )
            if shards
            else "-"
        )
        cells.append(_f(max(p.cpu_s for p in shards), 1) if shards else "-")
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
            "shard run CPU s (max)",
            "view run",
        ],
        mem_rows,
    )
    return memory


ROLES = ("cli", "forkserver", "run", "run_helper", "resource_tracker", "other")


def cpu_table(outcomes: list[Outcome]) -> str:
    """CPU seconds of the backfill's processes, by role, and how many processes each role had."""
    rows = []
    for o in outcomes:
        by_role = o.cpu_by_role()
        cells: list[object] = [o.scenario.name]
        for role in ROLES:
            n, s = by_role.get(role, (0, 0.0))
            cells.append(f"{_f(s, 1)} ({n})" if n else "-")
        cells += [_f(o.cpu_s, 1), len(o.processes)]
        rows.append(cells)
    return _md(["scenario", *ROLES, "total CPU s", "processes"], rows)


def target_rows(
    outcomes: list[Outcome],
    main: Outcome | None,
    scale: Outcome | None,
    fixed_s: float | None,
    ingest: dict[str, Any],
) -> list[list[object]]:
    """Each target, what was measured, and by how much it was missed."""
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
    if main:
        target(
            f"backfill CPU, every process ({main.scenario.ids:,} ids)",
            main.cpu_s,
            CPU_LIMIT_S,
            "s",
            True,
        )
    fixed = [o for o in outcomes if o.scenario.name.startswith("fixed")]
    if fixed:
        best = min(fixed, key=lambda o: o.wall_s)
        target("fixed cost, wall (1,000 ids)", fixed_s, FIXED_LIMIT_S, "s", True)
        target("fixed cost, CPU of every process", best.cpu_s, FIXED_LIMIT_S, "s", True)
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
    return targets


def ingest_table(ingest: dict[str, Any]) -> str:
    """The embedded engine's write paths, in rows per second."""
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
    return ingest_md


def scaling_table(main: Outcome | None, scale: Outcome | None, fixed_s: float | None) -> str:
    """Cost per 1,000 ids at both sizes: linear in ids when the two rows agree."""
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
    return scaling


def build_report(
    outcomes: list[Outcome], fixed_s: float | None, ingest: dict[str, Any], args: argparse.Namespace
) -> tuple[str, dict[str, Any]]:
    """The markdown a person reads and the JSON a later run compares with."""
    by_name = {o.scenario.name: o for o in outcomes}
    main = by_name.get("main")
    scale = by_name.get("scale")
    summary = summary_table(outcomes, fixed_s)
    stages = stages_table(outcomes)
    memory = memory_table(outcomes)
    targets = target_rows(outcomes, main, scale, fixed_s, ingest)
    target_md = _md(["target", "measured", "target", "status", "missed by"], targets)
    ingest_md = ingest_table(ingest)
    scaling = scaling_table(main, scale, fixed_s)
    git_state = _git_state()
    command = "make bench  # .venv/bin/python -m bench.run " + " ".join(args.argv)
    text = "\n\n".join(
        part
        for part in [
            f"# payout-backfill benchmark\n\n`{command.strip()}` on {os.cpu_count()} cores, "
            f"code at {git_state['head'][:10]}"
            f"{' + uncommitted changes' if git_state['status'] else ''}, "
            f"the backfill run from {pipeline_env()}, "
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
            "file-backed and shared. A shard is one process: its Dagster run (a fork), which "
            "fetches in-process.\n\n" + memory,
            "## CPU seconds by process role (processes)\n\n"
            "Every process of the backfill's tree, each counted at its last sample (the "
            "sampler's 0.2 s interval): the CLI, the forkserver it starts, the Dagster runs "
            "(forks of the forkserver) and their helpers.\n\n" + cpu_table(outcomes),
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
        "pipeline_env": pipeline_env(),
        "fixed_startup_s": fixed_s,
        "targets": [
            dict(zip(["target", "measured", "limit", "status", "missed_by"], t, strict=True))
            for t in targets
        ],
        "scenarios": [o.to_json() for o in outcomes],
        "ingest": ingest,
    }
    return text, data
