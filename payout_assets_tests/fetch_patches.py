"""Patches of a shard's fetch for the in-process tests: the fetch runs in the run's process, so
pytest's ``monkeypatch`` reaches it directly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from gql import gql
from graphql import validate

from payout_assets.sources.goldsky import documents
from payout_assets.warehouse import tables


def document_without_first() -> Any:
    """The pnl batch query exactly as shipped, minus ``first`` (what the original scripts sent)."""
    text = (Path(documents.__file__).parent / "queries" / "payouts_pnl.graphql").read_text()
    for part in ("$first: Int!, ", "first: $first, "):
        assert part in text, f"payouts_pnl.graphql changed shape: {part!r} not found"
        text = text.replace(part, "")
    document = gql(text).document
    assert not validate(documents.schema(documents.Dialect.PNL), document)
    return document


def drop_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client sends its payout query without ``first``."""
    original, no_first = documents.document, document_without_first()

    def patched(name: str, dialect: documents.Dialect) -> Any:
        return no_first if name == "payouts_pnl" else original(name, dialect)

    monkeypatch.setattr(documents, "document", patched)


def log_staging(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """One JSON line ``[shard, run_id, rows]`` in ``path`` per staging insert."""
    original = tables.stage_rows

    def spy(store: Any, rows: Any) -> None:
        if rows:
            with path.open("a") as out:
                out.write(json.dumps([int(rows[0][0]), str(rows[0][1]), len(rows)]) + "\n")
        original(store, rows)

    monkeypatch.setattr(tables, "stage_rows", spy)


def staging_log_entries(path: Path) -> list[tuple[int, str, int]]:
    if not path.exists():
        return []
    return [tuple(json.loads(line)) for line in path.read_text().splitlines()]  # type: ignore[misc]
