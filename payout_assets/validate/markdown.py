"""Markdown as the Dagster UI and ``payout-backfill verify`` show it; kept apart from the rules
so that what only renders (the CLI, the asset metadata) does not load pandas and pandera."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


class Markdown(str):
    """Metadata text meant to be rendered as markdown."""


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> Markdown:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return Markdown("\n".join(lines))


def counts_markdown(counts: Mapping[str, int], label: str = "state") -> Markdown:
    total = sum(counts.values())
    rows = [(k, f"{v:,}", f"{v / total:.1%}" if total else "-") for k, v in sorted(counts.items())]
    rows.append(("**total**", f"**{total:,}**", ""))
    return markdown_table([label, "ids", "share"], rows)
