"""Live progress of ``payout-backfill run``: per shard ids done / total, rate and ETA.

The figures are ``payout-backfill status``'s (:func:`payout_assets.cli.status.collect_status`:
the shard's latest run from the Dagster instance, its staged rows from ClickHouse), read by a
background thread every few seconds while the shards run, so the CLI's wait loop never blocks
on the store. The embedded store serves one process at a time behind a file lock, so each poll
is one short session, at most every ``interval_s`` seconds, and gives up on the lock after
``LOCK_TIMEOUT_S`` instead of queueing behind the shards. A poll's cost grows with the store (an
engine open, then reads of every staged run), and the shards need the CPU more than the display
does, so polls are spaced further apart when they cost more than ``MAX_POLL_SHARE`` of a core.

Three renderings: on a terminal a block redrawn in place; otherwise plain lines, one block per
poll; with ``--json`` one JSON object per line (``progress`` ticks, ``message`` lines, and the
``summary`` the command prints last), so stdout is machine-readable throughout.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, TextIO

import dagster as dg

from payout_assets.cli.status import StatusReport, collect_status
from payout_assets.settings import clickhouse_dsn
from payout_assets.warehouse.store import ClickHouseStore

Mode = Literal["tty", "plain", "json"]
INTERVAL_S = 5.0
LOCK_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 30.0
MAX_POLL_SHARE = 0.05  # of one core: the CPU the progress display may take from the shards


def poll_wait(interval_s: float, poll_cpu_s: float) -> float:
    """Seconds until the next poll: ``interval_s``, or longer when the last poll took more
    than ``MAX_POLL_SHARE`` of a core over that time."""
    return max(interval_s, poll_cpu_s / MAX_POLL_SHARE)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def progress_dict(report: StatusReport, keys: Sequence[str], at: float) -> dict[str, Any]:
    """One progress tick: per shard of ``keys`` ids done (staged rows) of total, rate and ETA,
    and the same summed over them."""
    shards = []
    for s in report.shards:
        if s.key not in keys:
            continue
        total = s.ids or 0
        # A running shard counts only its own run's rows (not those a killed run left staged).
        own = s.last_run is not None and s.rows_run_id == s.last_run.run_id
        if s.state == "done":
            done = total
        else:
            done = min(s.rows or 0, total) if own or s.state != "running" else 0
        rate = s.rate if s.state == "running" else None
        eta = (total - done) / rate if rate and s.state == "running" else None
        if s.state == "done":
            eta = 0.0
        shards.append(
            {
                "shard": s.key,
                "state": s.state,
                "done": done,
                "total": total,
                "rate": rate,
                "eta_s": eta,
            }
        )
    done = sum(s["done"] for s in shards)
    total = sum(s["total"] for s in shards)
    rate = sum(s["rate"] or 0.0 for s in shards)
    finished = all(s["state"] in ("done", "failed") for s in shards)
    return {
        "event": "progress",
        "at": at,
        "shards": shards,
        "done": done,
        "total": total,
        "rate": rate or None,
        "eta_s": 0.0 if finished else ((total - done) / rate if rate else None),
    }


def render_lines(tick: Mapping[str, Any]) -> list[str]:
    """A tick as aligned lines, one per shard and a total."""

    def line(name: str, state: str, done: int, total: int, rate: Any, eta: Any) -> str:
        pct = f"{100.0 * done / total:5.1f}%" if total else "    -"
        speed = f"{rate:,.1f} ids/s" if rate else "- ids/s"
        return (
            f"{name:<9} {state:<8} {done:>11,} / {total:<11,} {pct}  {speed:>14}  "
            f"ETA {_duration(eta)}"
        )

    lines = [
        line(s["shard"], s["state"], s["done"], s["total"], s["rate"], s["eta_s"])
        for s in tick["shards"]
    ]
    lines.append(line("total", "", tick["done"], tick["total"], tick["rate"], tick["eta_s"]))
    return lines


class Progress:
    """Writes messages, progress ticks and the final summary to ``out`` in one ``mode``."""

    def __init__(self, mode: Mode, out: TextIO | None = None, interval_s: float = INTERVAL_S):
        self.mode = mode
        self.out = out if out is not None else sys.stdout
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._block: list[str] = []  # the tty block on screen, redrawn below each message

    @classmethod
    def for_stdout(cls, as_json: bool) -> Progress:
        if as_json:
            return cls("json")
        return cls("tty" if sys.stdout.isatty() else "plain")

    # -- output ------------------------------------------------------------------------------

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _erase_block(self) -> None:
        if self._block:
            self._write(f"\033[{len(self._block)}F\033[J")

    def say(self, text: str) -> None:
        """A message line (what ``run_backfill`` reports); the tty block stays below it."""
        with self._lock:
            if self.mode == "json":
                self._write(json.dumps({"event": "message", "text": text.strip()}) + "\n")
                return
            if self.mode == "tty":
                self._erase_block()
            self._write(text + "\n")
            if self.mode == "tty" and self._block:
                self._write("\n".join(self._block) + "\n")

    def emit(self, tick: Mapping[str, Any]) -> None:
        with self._lock:
            if self.mode == "json":
                self._write(json.dumps(tick) + "\n")
                return
            lines = render_lines(tick)
            if self.mode == "tty":
                self._erase_block()
                self._block = lines
                self._write("\n".join(lines) + "\n")
            else:
                stamp = time.strftime("%H:%M:%S", time.localtime(tick["at"]))
                self._write("\n".join(f"[{stamp}] {line}" for line in lines) + "\n")

    def summary(self, payload: Mapping[str, Any]) -> None:
        """The final JSON object (``--json`` only; the other modes print the summary table)."""
        if self.mode == "json":
            with self._lock:
                self._write(json.dumps({"event": "summary", **payload}) + "\n")

    # -- polling -----------------------------------------------------------------------------

    def poll(
        self, instance: dg.DagsterInstance, store: ClickHouseStore, keys: Sequence[str]
    ) -> dict[str, Any] | None:
        """One tick, or None when the store could not be read this time (its lock was busy
        for longer than ``LOCK_TIMEOUT_S``); the next poll tries again."""
        report = collect_status(instance, store, keys)
        if report.snapshot is None:
            return None
        return progress_dict(report, keys, time.time())

    @contextmanager
    def watching(self, instance: dg.DagsterInstance, keys: Sequence[str]) -> Iterator[None]:
        """Poll and emit every ``interval_s`` seconds while the block runs, then once more, so
        the last tick shows where every shard ended."""
        if not keys:
            yield
            return
        # No background merges in this process's short sessions (as in the shards' own).
        store = ClickHouseStore(clickhouse_dsn(), lock_timeout_s=LOCK_TIMEOUT_S, merges=False)
        stop = threading.Event()

        def loop() -> None:
            wait = self.interval_s
            while not stop.wait(wait):
                started = time.process_time()  # the engine's own threads too
                tick = self.poll(instance, store, keys)
                if tick is not None and not stop.is_set():
                    self.emit(tick)
                wait = poll_wait(self.interval_s, time.process_time() - started)

        thread = threading.Thread(target=loop, name="progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=STOP_TIMEOUT_S)
        tick = self.poll(instance, store, keys)
        if tick is not None:
            self.emit(tick)
        with self._lock:
            self._block = []  # the last block stays on screen; later messages go below it
