"""The naive baseline: the original TypeScript client's pace, reproduced against the simulator.

What it reproduces: 4 workers, each sending one request at a time and pausing 500 ms after every
answer, 1,000 ids per request with ``first`` set (the original's one bug, the missing ``first``,
is *not* reproduced: the baseline must land the same rows, so only its pace is compared). Each
worker takes a contiguous quarter of the ids, as the four hand-started workers did. A 429 is
retried after the same pause and counted.

What it leaves out: ClickHouse. It only fetches and parses JSON, so its wall time is a lower
bound for the original pipeline, and the speed-up reported against it is conservative.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

QUERY = (
    Path(__file__).resolve().parent.parent
    / "payout_assets"
    / "sources"
    / "goldsky"
    / "queries"
    / "payouts_pnl.graphql"
).read_text()
WORKERS = 4
PAUSE_S = 0.5
BATCH = 1000
MAX_ATTEMPTS = 20


@dataclass
class BaselineResult:
    ids: int
    workers: int
    pause_s: float
    batch: int
    wall_s: float
    requests: int
    retries: int
    rows: int
    resolved: int

    @property
    def ids_per_s(self) -> float:
        return self.ids / self.wall_s if self.wall_s else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ids_per_s": round(self.ids_per_s, 1)}


class _Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.retries = 0
        self.rows = 0
        self.resolved = 0
        self.error: BaseException | None = None


def _worker(
    client: httpx.Client, url: str, ids: Sequence[str], counts: _Counts, stop: threading.Event
) -> None:
    try:
        for start in range(0, len(ids), BATCH):
            batch = list(ids[start : start + BATCH])
            body = json.dumps(
                {"query": QUERY, "variables": {"ids": batch, "first": len(batch), "block": None}}
            )
            for _attempt in range(MAX_ATTEMPTS):
                if stop.is_set():
                    return
                response = client.post(url, content=body)
                with counts.lock:
                    counts.requests += 1
                if response.status_code == 200:
                    rows = response.json()["data"]["conditions"]
                    with counts.lock:
                        counts.rows += len(rows)
                        counts.resolved += sum(1 for r in rows if r.get("payoutDenominator"))
                    break
                with counts.lock:
                    counts.retries += 1
                time.sleep(PAUSE_S)
            else:
                raise RuntimeError(f"batch at {start} failed {MAX_ATTEMPTS} times")
            time.sleep(PAUSE_S)
    except BaseException as exc:  # surface it to the caller, stop the other workers
        counts.error = exc
        stop.set()


def run_baseline(url: str, ids: Sequence[str], timeout_s: float = 3600.0) -> BaselineResult:
    """Fetch ``ids`` (``0x``-prefixed subgraph ids) at the original client's pace."""
    counts = _Counts()
    stop = threading.Event()
    quarter = -(-len(ids) // WORKERS)
    with httpx.Client(
        timeout=httpx.Timeout(60.0), headers={"content-type": "application/json"}
    ) as client:
        threads = [
            threading.Thread(
                target=_worker,
                args=(client, url, ids[w * quarter : (w + 1) * quarter], counts, stop),
                name=f"baseline-{w}",
                daemon=True,
            )
            for w in range(WORKERS)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        deadline = started + timeout_s
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        wall = time.monotonic() - started
        if any(t.is_alive() for t in threads):
            stop.set()
            for thread in threads:
                thread.join(timeout=70)
            raise TimeoutError(f"baseline did not finish within {timeout_s:.0f}s")
    if counts.error is not None:
        raise RuntimeError(f"baseline failed: {counts.error}") from counts.error
    return BaselineResult(
        ids=len(ids),
        workers=WORKERS,
        pause_s=PAUSE_S,
        batch=BATCH,
        wall_s=wall,
        requests=counts.requests,
        retries=counts.retries,
        rows=counts.rows,
        resolved=counts.resolved,
    )
