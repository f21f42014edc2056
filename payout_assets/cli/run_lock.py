"""One ``payout-backfill run`` per store at a time.

Two runs on one store would each take or resume the same snapshot and fetch every id twice, so
the second refuses, saying who holds the store. The lock is an OS-level ``flock`` on a file keyed
by the store (next to an embedded store, in the temp dir for a server: ``ClickHouseStore.
named_lock``'s place), held by the CLI process for its whole life: the kernel releases it when
that process exits or is killed, so a crashed run never blocks the next one. The holder's pid and
host are written into the file for the refusal's message only; they are never used to decide.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import Timeout

from payout_assets.redact import redact
from payout_assets.warehouse.locks import AdvisoryLock
from payout_assets.warehouse.store import ClickHouseStore

LOCK_NAME = "backfill-run"

# what this process holds, released only when it exits: descriptors, PostgreSQL sessions
_held: list[int | AdvisoryLock] = []


@dataclass(frozen=True)
class Busy:
    """Another live ``run`` holds the store."""

    lock_path: Path
    holder: dict[str, object]

    def message(self, store: str) -> str:
        pid, host = self.holder.get("pid", "?"), self.holder.get("host", "?")
        since = self.holder.get("started")
        started = (
            f" since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(float(since)))}"
            if isinstance(since, int | float)
            else ""
        )
        return (
            f"another payout-backfill run is running on this store ({store}): pid {pid} on "
            f"{host}{started}; wait for it to finish (payout-backfill status shows it) or stop "
            f"it (kill {pid}), then run again"
        )


def lock_path(store: ClickHouseStore) -> Path:
    return Path(store.named_lock(LOCK_NAME).lock_file)


def acquire(store: ClickHouseStore, lock_url: str | None = None) -> Busy | None:
    """Take the store's run lock for the rest of this process's life, or say who holds it.

    With ``lock_url`` (DAGSTER_PG_URL: runs on several hosts) the lock is a PostgreSQL advisory
    lock, seen from every host. Otherwise the file is opened without truncation and rewritten
    only once the lock is ours, so a refused run never wipes the holder's pid from it."""
    if lock_url:
        return _acquire_advisory(store, lock_url)
    path = lock_path(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        return Busy(path, holder)
    os.ftruncate(fd, 0)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    os.write(fd, json.dumps(info).encode())
    _held.append(fd)
    return None


def _read_holder(fd: int) -> dict[str, object]:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        holder = json.loads(text)
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _acquire_advisory(store: ClickHouseStore, lock_url: str) -> Busy | None:
    me = f"pid {os.getpid()} on {socket.gethostname()}"
    lock = AdvisoryLock(lock_url, redact(store.dsn), LOCK_NAME, holder=me)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        found = lock.holder()
        name, since = found if found else ("", None)
        words = name.split()
        holder: dict[str, object] = {"started": since}
        if "pid" in words and "on" in words:
            holder.update(pid=words[words.index("pid") + 1], host=words[words.index("on") + 1])
        return Busy(Path(f"PostgreSQL advisory lock {LOCK_NAME}"), holder)
    _held.append(lock)
    return None
