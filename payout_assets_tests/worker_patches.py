"""Test patches for the fetch worker, applied in the worker process itself.

The worker (``payout_assets.sources.goldsky.worker``) is a new process started by Dagster Pipes,
so pytest's ``monkeypatch`` in the test process cannot reach it. A test calls
:func:`patch_worker`, which configures ``PAYOUT_FETCH_WORKER`` to run this module instead (it
applies the patches, then runs the real worker) and puts the patches in an environment variable.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

import pytest
from gql import gql
from graphql import validate

from payout_assets.sources.goldsky import documents, worker

PATCHES_ENV = "PAYOUT_TEST_WORKER_PATCHES"
WORKER_ENV = "PAYOUT_FETCH_WORKER"


def patch_worker(
    monkeypatch: pytest.MonkeyPatch,
    *,
    flush_rows: int | None = None,
    slice_ids: int | None = None,
    staging_log: Path | None = None,
    no_first: bool = False,
    die_after_staging: bool = False,
    disk_at_death: Path | None = None,
) -> None:
    """Patch the fetch worker of every run this test starts.

    ``flush_rows`` / ``slice_ids`` replace ``shard.FLUSH_ROWS`` / ``tables.SLICE_IDS``;
    ``staging_log`` gets one JSON line ``[shard, run_id, rows]`` per staging insert;
    ``no_first`` makes the client send its payout query without ``first``;
    ``die_after_staging`` SIGKILLs the worker once its first rows are staged (a worker that
    dies without a report, as the kernel's OOM killer would leave it); with ``disk_at_death``
    it first copies the temp dir there: what a kill of the whole run (the run process too, which
    would otherwise clean its Pipes files up) leaves on disk."""
    patches = {
        "flush_rows": flush_rows,
        "slice_ids": slice_ids,
        "staging_log": str(staging_log) if staging_log else None,
        "no_first": no_first,
        "die_after_staging": die_after_staging,
        "disk_at_death": str(disk_at_death) if disk_at_death else None,
    }
    monkeypatch.setenv(WORKER_ENV, __name__)
    monkeypatch.setenv(PATCHES_ENV, json.dumps(patches))


def document_without_first() -> Any:
    """The pnl batch query exactly as shipped, minus ``first`` (what the original scripts sent)."""
    text = (Path(documents.__file__).parent / "queries" / "payouts_pnl.graphql").read_text()
    for part in ("$first: Int!, ", "first: $first, "):
        assert part in text, f"payouts_pnl.graphql changed shape: {part!r} not found"
        text = text.replace(part, "")
    document = gql(text).document
    assert not validate(documents.schema(documents.Dialect.PNL), document)
    return document


def staging_log_entries(path: Path) -> list[tuple[int, str, int]]:
    if not path.exists():
        return []
    return [tuple(json.loads(line)) for line in path.read_text().splitlines()]  # type: ignore[misc]


def _apply(patches: dict[str, Any]) -> None:
    from payout_assets.sources.goldsky import shard
    from payout_assets.warehouse import tables

    if patches.get("flush_rows"):
        shard.FLUSH_ROWS = int(patches["flush_rows"])
    if patches.get("slice_ids"):
        tables.SLICE_IDS = int(patches["slice_ids"])
    if patches.get("staging_log"):
        log = Path(patches["staging_log"])
        original_stage = tables.stage_rows

        def spy_stage(store: Any, rows: Any) -> None:
            if rows:
                with log.open("a") as out:
                    out.write(json.dumps([int(rows[0][0]), str(rows[0][1]), len(rows)]) + "\n")
            original_stage(store, rows)

        tables.stage_rows = spy_stage  # type: ignore[assignment]
    if patches.get("die_after_staging"):
        stage = tables.stage_rows

        disk_at_death = patches.get("disk_at_death")

        def stage_then_die(store: Any, rows: Any) -> None:
            stage(store, rows)
            if disk_at_death:
                shutil.copytree(tempfile.gettempdir(), disk_at_death, dirs_exist_ok=True)
            os.kill(os.getpid(), signal.SIGKILL)

        tables.stage_rows = stage_then_die  # type: ignore[assignment]
    if patches.get("no_first"):
        original, no_first = documents.document, document_without_first()

        def patched(name: str, dialect: documents.Dialect) -> Any:
            return no_first if name == "payouts_pnl" else original(name, dialect)

        documents.document = patched  # type: ignore[assignment]


if __name__ == "__main__":
    _apply(json.loads(os.environ.get(PATCHES_ENV, "{}")))
    worker.main()
