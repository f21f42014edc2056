"""The benchmark's scenarios, their targets and what a run of one measured."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bench.procs import ProcessPeak
from bench.sim import PIPELINE_BIN, VENV_BIN

MAX_FIRST = 1000
SEED = 11
# Targets of issue 6
RATIO_SLACK = 1.3
RSS_FLAT_SHARE = 0.10
ANON_LIMIT_MB = 250.0
INGEST_TARGET_ROWS_S = 100_000.0
# Targets of issue 18: CPU of every backfill process at 170,448 ids; the 1,000-id fixed cost
CPU_LIMIT_S = 25.0
FIXED_LIMIT_S = 8.0


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

    def shard_peaks(self) -> list[ProcessPeak]:
        """The shards' processes: one Dagster run each, which fetches in-process."""
        return [p for p in self.processes if p.role == "run" and p.label.startswith("shard-")]

    def peak(self, label: str) -> ProcessPeak | None:
        found = [p for p in self.processes if p.label == label]
        return max(found, key=lambda p: p.peak_rss_mb) if found else None

    @property
    def cpu_s(self) -> float:
        """CPU seconds of every process of the backfill (the CLI's whole tree)."""
        return sum(p.cpu_s for p in self.processes)

    def cpu_by_role(self) -> dict[str, tuple[int, float]]:
        """role -> (processes, CPU seconds)."""
        out: dict[str, tuple[int, float]] = {}
        for p in self.processes:
            n, s = out.get(p.role, (0, 0.0))
            out[p.role] = (n + 1, s + p.cpu_s)
        return out

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
            "cpu_s": round(self.cpu_s, 2),
            "cpu_s_by_role": {r: round(s, 2) for r, (_, s) in self.cpu_by_role().items()},
            "processes": [p.to_json() for p in self.processes],
            "baseline": self.baseline,
            "other_load_cores": self.other_load_cores,
            "sampler_cpu_s": self.sampler_cpu_s,
            "log_dir": self.log_dir,
        }


# -- one scenario ----------------------------------------------------------------------------


def pipeline_env() -> str:
    if PIPELINE_BIN == VENV_BIN:
        return ".venv (the development environment: run `make bench` for a production install)"
    return ".venv-bench (a production install: no dev packages)"
