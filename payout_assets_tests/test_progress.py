"""`payout-backfill run`'s live progress: the figures per shard (from `status`'s report), and
how they are written on a terminal, to a pipe, and as JSON. The end-to-end `--json` run is part
of test_cli.py's resume test."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys

import pytest

from payout_assets.cli.progress import (
    MAX_POLL_SHARE,
    Progress,
    poll_wait,
    progress_dict,
    render_lines,
)
from payout_assets.cli.status import LastRun, ShardStatus, StatusReport

pytestmark = pytest.mark.e2e

KEYS = ["shard-00", "shard-01", "shard-02"]


def _run(run_id: str, status: str = "STARTED") -> LastRun:
    return LastRun(run_id, "backfill_shard", status, 100.0, 100.0, None)


def _report() -> StatusReport:
    shards = [
        ShardStatus("shard-00", "done", ids=2_000, rows=2_000, last_run=_run("a", "SUCCESS")),
        ShardStatus(
            "shard-01",
            "running",
            ids=3_000,
            rows=1_000,
            last_run=_run("b"),
            rows_run_id="b",
            rate=50.0,
        ),
        # running, but the rows staged are a killed earlier run's: none of them is its own yet
        ShardStatus(
            "shard-02", "running", ids=1_000, rows=400, last_run=_run("c"), rows_run_id="x"
        ),
    ]
    return StatusReport(dagster_home="h", store="s", shards=shards, snapshot={"generation": "g"})


def test_progress_figures_per_shard_and_total() -> None:
    tick = progress_dict(_report(), KEYS, at=1_000.0)
    by_shard = {s["shard"]: s for s in tick["shards"]}
    assert by_shard["shard-00"] == {
        "shard": "shard-00",
        "state": "done",
        "done": 2_000,
        "total": 2_000,
        "rate": None,
        "eta_s": 0.0,
    }
    assert by_shard["shard-01"]["done"] == 1_000 and by_shard["shard-01"]["eta_s"] == 40.0
    assert by_shard["shard-02"]["done"] == 0 and by_shard["shard-02"]["eta_s"] is None
    assert (tick["done"], tick["total"], tick["rate"]) == (3_000, 6_000, 50.0)
    assert tick["eta_s"] == 60.0  # 3,000 ids left at 50 ids/s
    only = progress_dict(_report(), ["shard-00"], at=1_000.0)
    assert [s["shard"] for s in only["shards"]] == ["shard-00"] and only["eta_s"] == 0.0


def test_polls_are_spaced_out_when_they_cost_more_than_their_share_of_a_core() -> None:
    assert poll_wait(5.0, 0.0) == 5.0
    assert poll_wait(5.0, 5.0 * MAX_POLL_SHARE) == 5.0
    assert poll_wait(5.0, 1.0) == pytest.approx(1.0 / MAX_POLL_SHARE)
    assert poll_wait(5.0, 1.0) > 5.0


def test_rendering_plain_json_and_terminal() -> None:
    tick = progress_dict(_report(), KEYS, at=1_000.0)
    lines = render_lines(tick)
    assert len(lines) == 4 and lines[-1].startswith("total")
    assert "1,000 / 3,000" in lines[1] and "33.3%" in lines[1] and "50.0 ids/s" in lines[1]
    assert "ETA 0m40s" in lines[1] and "ETA 1m00s" in lines[-1]

    plain = io.StringIO()
    Progress("plain", plain).emit(tick)
    assert [line.split("] ", 1)[1] for line in plain.getvalue().splitlines()] == lines

    machine = io.StringIO()
    progress = Progress("json", machine)
    progress.say("  shard-00: done (1/3)")
    progress.emit(tick)
    progress.summary({"ok": True})
    events = [json.loads(line) for line in machine.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["message", "progress", "summary"]
    assert events[0]["text"] == "shard-00: done (1/3)" and events[1] == tick

    screen = io.StringIO()
    progress = Progress("tty", screen)
    progress.emit(tick)
    progress.say("shard-01: done (2/3)")
    progress.emit(tick)
    erase = f"\033[{len(lines)}F\033[J"
    block = "\n".join(lines) + "\n"
    # the block, then erased for the message and redrawn below it, then replaced in place
    assert screen.getvalue() == block + erase + "shard-01: done (2/3)\n" + block + erase + block


def test_terminal_mode_only_on_a_terminal() -> None:
    code = "from payout_assets.cli.progress import Progress; print(Progress.for_stdout(False).mode)"
    piped = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert piped.stdout.strip() == "plain"

    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=follower, stderr=follower)
    os.close(follower)
    out = b""
    try:
        for _ in range(600):  # bounded: at most about 60 s
            ready, _, _ = select.select([leader], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(leader, 1024)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        assert proc.wait(timeout=60) == 0
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    assert out.decode().strip() == "tty"
