"""Metadata a person reads in the Dagster UI: markdown tables and standard keys."""

from collections.abc import Iterable, Mapping, Sequence

import dagster as dg


def md_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> dg.MetadataValue:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return dg.MetadataValue.md("\n".join(lines))


def counts_table(counts: Mapping[str, int], label: str = "state") -> dg.MetadataValue:
    total = sum(counts.values())
    rows = [(k, f"{v:,}", f"{v / total:.1%}" if total else "-") for k, v in sorted(counts.items())]
    rows.append(("**total**", f"**{total:,}**", ""))
    return md_table([label, "ids", "share"], rows)


def table_name(name: str) -> dict[str, dg.MetadataValue]:
    return {"dagster/table_name": dg.MetadataValue.text(name)}
