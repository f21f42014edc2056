"""A memory sampler for the backfill's process tree (stopping it: payout_standins.procs).

Why sample ``/proc`` instead of asking the processes: the shard runs are forks of a forkserver
that the CLI starts, live a few seconds each and must not be instrumented (the benchmark measures
the code as shipped). Each tick reads ``VmHWM`` (the kernel's own peak RSS, so a spike between
ticks is not missed), ``RssAnon`` (heap: what the process itself allocated) and ``RssFile``
(mapped files, mostly the embedded engine's ~210 MB shared library, shared between processes)
and ``Private_Dirty`` (what the process alone holds: a fork's ``RssAnon`` also counts the
forkserver's heap, which it shares copy-on-write).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

_FORKSERVER = "multiprocessing.forkserver"
# A process first seen between its fork and its exec still shows its parent's command line (the
# forkserver, seen that early, looked like "other", and so did every run it forked). An exec
# follows its fork within milliseconds, so "other" is decided again for this long only.
_EXEC_GRACE_S = 1.0
PRIVATE_EVERY_S = 1.0


def _status_kb(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0])
    return out


def _private_dirty_kb(pid: int) -> int:
    """Pages only this process holds (``Private_Dirty``): a fork's heap minus what it still
    shares copy-on-write with the forkserver, which ``RssAnon`` counts in every fork."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii", errors="replace") as rollup:
            for line in rollup:
                if line.startswith("Private_Dirty:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _stdout_target(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/fd/1")
    except OSError:
        return ""


@dataclass
class ProcessPeak:
    """One process of the tree: what it was and the most memory it held."""

    pid: int
    role: str  # cli | forkserver | run | run_helper | resource_tracker | other
    label: str  # shard-03 (a run), refresh_missing_ids, ..., or the role
    first_seen_s: float
    last_seen_s: float
    peak_rss_mb: float = 0.0  # VmHWM: the kernel's high-water mark
    peak_anon_mb: float = 0.0  # highest RssAnon seen in a sample
    file_at_peak_anon_mb: float = 0.0
    peak_private_mb: float = 0.0  # highest Private_Dirty: memory not shared with any process
    cpu_s: float = 0.0
    samples: int = 0
    anon_at_private_mb: float = -1.0  # RssAnon when Private_Dirty was last read
    private_read_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            k: round(v, 3) if isinstance(v, float) else v
            for k, v in asdict(self).items()
            if k not in ("anon_at_private_mb", "private_read_s")  # the sampler's bookkeeping
        }

    def settled(self, now: float) -> bool:
        """Whether the role is final (see ``_EXEC_GRACE_S``)."""
        return self.role != "other" or now - self.first_seen_s > _EXEC_GRACE_S


@dataclass
class TreeSampler:
    """Samples the process tree under ``root_pid`` every ``interval_s`` on a daemon thread."""

    root_pid: int
    started: float
    interval_s: float = 0.2
    peaks: dict[int, ProcessPeak] = field(default_factory=dict)
    cpu_s: float = 0.0  # the sampler thread's own CPU: the benchmark reports its cost
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TreeSampler:
        self._thread = threading.Thread(target=self._loop, name="tree-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        try:
            root = psutil.Process(self.root_pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            alive = self._tick(root)
            self.cpu_s = time.thread_time()
            if not alive:
                return
            self._stop.wait(self.interval_s)

    def _tick(self, root: psutil.Process) -> bool:
        """Sample every process of the tree once; False once the root is gone."""
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return False
        now = time.monotonic() - self.started
        forkservers = {pid for pid, p in self.peaks.items() if p.role == "forkserver"}
        forkservers |= {p.pid for p in tree if self._is_forkserver(p, now)}
        for proc in tree:
            try:
                self._sample(proc, forkservers, now)
            except (psutil.Error, OSError):
                continue  # it exited between listing and reading
        return True

    def _is_forkserver(self, proc: psutil.Process, now: float) -> bool:
        """The forkserver itself, not one of its forks: forks keep its command line, so the
        test is that the parent's command line is not a forkserver's."""
        known = self.peaks.get(proc.pid)
        if known is not None and known.settled(now):
            return known.role == "forkserver"
        try:
            return _FORKSERVER in " ".join(proc.cmdline()) and _FORKSERVER not in " ".join(
                psutil.Process(proc.ppid()).cmdline()
            )
        except (psutil.Error, OSError):
            return False

    def _role(self, proc: psutil.Process, forkservers: set[int]) -> str:
        if proc.pid == self.root_pid:
            return "cli"
        if proc.pid in forkservers:
            return "forkserver"
        if proc.ppid() in forkservers:
            return "run"
        cmdline = " ".join(proc.cmdline())
        if "resource_tracker" in cmdline:
            return "resource_tracker"
        if "watch_orphans" in cmdline:
            return "run_helper"  # Dagster's compute-log watcher, two per run
        return "other"

    def _sample(self, proc: psutil.Process, forkservers: set[int], now: float) -> None:
        peak = self.peaks.get(proc.pid)
        if peak is None or not peak.settled(now):
            # what was sampled before the exec was the parent's image, and is dropped
            role = self._role(proc, forkservers)
            if peak is None or role != "other":
                peak = ProcessPeak(proc.pid, role, role, now, now)
                self.peaks[proc.pid] = peak
        if peak.role == "run" and not peak.label.endswith(".log"):
            target = _stdout_target(proc.pid)  # the launcher points fd 1 at logs/<key>.log
            if target.endswith(".log"):
                peak.label = os.path.basename(target)
        kb = _status_kb(proc.pid)
        cpu = proc.cpu_times()
        peak.last_seen_s = now
        peak.samples += 1
        peak.cpu_s = cpu.user + cpu.system
        peak.peak_rss_mb = max(peak.peak_rss_mb, kb.get("VmHWM", 0) / 1024)
        anon = kb.get("RssAnon", 0) / 1024
        if anon >= peak.peak_anon_mb:
            peak.peak_anon_mb = anon
            peak.file_at_peak_anon_mb = kb.get("RssFile", 0) / 1024
        # smaps_rollup walks the whole address space (5 ms for a process with the engine
        # mapped, against 0.05 ms for status): it is read when RssAnon tops the last value it
        # was read at by a megabyte, and at least every PRIVATE_EVERY_S otherwise. Private
        # memory is RssAnon less what is still shared with the forkserver, and that shared
        # part only shrinks, so its peak comes with an RssAnon peak or within the interval.
        if anon > peak.anon_at_private_mb + 1 or now - peak.private_read_s >= PRIVATE_EVERY_S:
            peak.anon_at_private_mb = anon
            peak.private_read_s = now
            peak.peak_private_mb = max(peak.peak_private_mb, _private_dirty_kb(proc.pid) / 1024)

    def results(self) -> list[ProcessPeak]:
        for peak in self.peaks.values():
            peak.label = peak.label.removesuffix(".log")
        return sorted(self.peaks.values(), key=lambda p: (p.role, p.label, p.pid))
