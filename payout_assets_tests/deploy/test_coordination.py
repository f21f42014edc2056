"""What holds across hosts: the request rate in Redis, a shard's lock in PostgreSQL.

Two "hosts" here are two limiters (or lock holders) that share nothing but the service: each
limiter has its own SQLite file, as each host has its own temp dir."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from filelock import Timeout

from payout_assets.cli import run_lock
from payout_assets.sources.rate import shared_limiter
from payout_assets.warehouse.locks import AdvisoryLock
from payout_assets.warehouse.store import ClickHouseStore

pytestmark = pytest.mark.integration

MAX_RPS = 10.0
SECONDS = 2.0


def _admitted(tmp_path: Path, redis_url: str | None) -> int:
    """Requests two hosts' limiters admit together in ``SECONDS``, each asking as fast as it can."""
    endpoint = f"http://127.0.0.1:9/{tmp_path.name}"  # a key of its own per test
    limiters = [
        shared_limiter(endpoint, MAX_RPS, str(tmp_path / f"host-{h}.sqlite"), redis_url)
        for h in "ab"
    ]
    counts = [0, 0]
    deadline = time.monotonic() + SECONDS

    def ask(host: int) -> None:
        while time.monotonic() < deadline:
            limiters[host].try_acquire("request", blocking=True)  # as the clients ask
            if time.monotonic() < deadline:
                counts[host] += 1

    threads = [threading.Thread(target=ask, args=(h,)) for h in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for limiter in limiters:
        limiter.close()
    assert all(counts), counts  # both hosts were served
    return sum(counts)


def test_hosts_sharing_redis_share_one_rate(tmp_path: Path, redis_url: str) -> None:
    # one window of MAX_RPS per ~1.05 s: at most three windows' worth in two seconds
    allowed = int(MAX_RPS) * 3
    assert _admitted(tmp_path, redis_url) <= allowed
    # the control: without Redis each host keeps its own window, and together they exceed it
    assert _admitted(tmp_path, None) > allowed


HOLD = """
import sys, time
from payout_assets.warehouse.locks import AdvisoryLock
from payout_assets.warehouse.store import ClickHouseStore
lock = AdvisoryLock(sys.argv[1], "store", "shard-01")
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_a_shards_lock_is_exclusive_across_hosts_and_dies_with_its_holder(pg_url: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, pg_url], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        other = AdvisoryLock(pg_url, "store", "shard-01")
        with pytest.raises(Timeout):
            other.acquire(timeout=0)
        AdvisoryLock(pg_url, "store", "shard-02").acquire(timeout=0)  # other shards are free
        AdvisoryLock(pg_url, "another store", "shard-01").acquire(timeout=0)
        holder.kill()  # SIGKILL: no release, the server ends the session
        holder.wait(timeout=10)
        other.acquire(timeout=10)
        other.release()
    finally:
        holder.kill()
        holder.wait(timeout=10)


HOLD_RUN = """
import sys, time
from payout_assets.cli import run_lock
from payout_assets.warehouse.store import ClickHouseStore
assert run_lock.acquire(ClickHouseStore(sys.argv[2]), sys.argv[1]) is None
print("held", flush=True)
time.sleep(600)
"""


def test_a_second_run_on_another_host_is_refused_naming_the_first(pg_url: str) -> None:
    dsn = "http://default@clickhouse.internal:8123/default"  # one server both hosts write to
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_RUN, pg_url, dsn],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        busy = run_lock.acquire(ClickHouseStore(dsn), pg_url)
        assert busy is not None
        message = busy.message("clickhouse.internal")
        assert f"pid {holder.pid} on " in message and "since 20" in message
        holder.kill()
        holder.wait(timeout=10)
        assert run_lock.acquire(ClickHouseStore(dsn), pg_url) is None  # freed with its session
    finally:
        holder.kill()
        holder.wait(timeout=10)
