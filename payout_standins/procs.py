"""Stopping what the stand-ins, the tests and the benchmark start: one way, for every caller.

Every such process is started with ``start_new_session=True``, so it leads its own process group
and everything it spawns (dagster dev's webserver, daemon, code servers and runs; the CLI's
forkserver and shard runs; Chromium's helpers) is in that group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import suppress
from typing import Any

import psutil

GRACE_S = 10.0


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(
    proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, grace_s: float = GRACE_S
) -> None:
    """``sig`` to ``proc``'s whole process group, up to ``grace_s`` for every member to exit,
    then SIGKILL to whatever is left of the group, whether or not its leader has exited, and to
    any descendant that left the group. SIGTERM first lets dagster mark its runs; pass SIGKILL
    to stop at once."""
    pgid = proc.pid
    try:
        descendants = psutil.Process(pgid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    with suppress(ProcessLookupError):
        os.killpg(pgid, sig)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        proc.poll()  # reap the leader, so only live members keep the group
        if not _group_alive(pgid):
            break
        time.sleep(0.05)
    else:
        with suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    for child in descendants:
        with suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(descendants, timeout=grace_s)
