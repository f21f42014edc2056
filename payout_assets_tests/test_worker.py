"""The fetch worker (``payout_assets.sources.goldsky.worker``): the process a shard's fetch runs in.

Its end-to-end behaviour (rows, retries, failures with their ids) is what every backfill test
checks, since ``goldsky_payouts`` always fetches through it; these tests pin the two properties
it exists for: it carries no Dagster, and it does not outlive the run that started it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

pytestmark = pytest.mark.integration

_PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
print(child.pid, flush=True)
time.sleep(120)
"""
_CHILD = """
import os, time
from payout_assets.sources.goldsky.worker import die_with_parent
die_with_parent(os.getppid())
print("armed", flush=True)
time.sleep(120)
"""


def test_the_fetch_worker_imports_no_dagster() -> None:
    """Everything a fetch uses (client, validation, store, Pipes) loads without Dagster, which
    is what keeps a shard's largest process ~65 MB smaller than its Dagster run."""
    code = (
        "import sys, payout_assets.sources.goldsky.worker; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_fetch_worker_dies_with_its_run() -> None:
    """A run killed with SIGKILL cannot stop its worker; the kernel does (PR_SET_PDEATHSIG), so
    no orphan goes on fetching and writing for a run that is over."""
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, _CHILD], stdout=subprocess.PIPE, text=True
    )
    child = 0
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())  # the parent prints its child's pid...
        assert parent.stdout.readline().strip() == "armed"  # ...the child, once armed
        assert not _gone(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(child)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=10)
        if child and not _gone(child):
            os.kill(child, signal.SIGKILL)
