"""Metadata a person reads in the Dagster UI: markdown tables and standard keys."""

from collections.abc import Iterable, Mapping, Sequence

import dagster as dg

from payout_assets.validate.markdown import counts_markdown, markdown_table


def md_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown_table(headers, rows))


def counts_table(counts: Mapping[str, int], label: str = "state") -> dg.MetadataValue:
    return dg.MetadataValue.md(counts_markdown(counts, label))


def table_name(name: str) -> dict[str, dg.MetadataValue]:
    return {"dagster/table_name": dg.MetadataValue.text(name)}
