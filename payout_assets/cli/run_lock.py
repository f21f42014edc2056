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

from payout_assets.warehouse.store import ClickHouseStore

LOCK_NAME = "backfill-run"

_held: list[int] = []  # the descriptors this process holds; closed only when it exits


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


def acquire(store: ClickHouseStore) -> Busy | None:
    """Take the store's run lock for the rest of this process's life, or say who holds it.

    The file is opened without truncation and rewritten only once the lock is ours, so a
    refused run never wipes the holder's pid from it."""
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
