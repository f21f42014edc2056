"""The pre-flight checks as a Dagster job, so they can be launched from the UI (or a schedule,
or ``dg launch --job preflight``) against exactly the resources the backfill runs will get.

Same checks as ``payout-backfill preflight`` (:mod:`payout_assets.preflight`): each result is a
log line, the whole report is a markdown table in the op's metadata, and any FAIL fails the run.
"""

import dagster as dg

from payout_assets.defs.metadata import md_table
from payout_assets.preflight.result import CheckResult, Status, summary
from payout_assets.preflight.run import inputs_from_resources, run_preflight
from payout_assets.sources.goldsky.resource import GoldskyResource
from payout_assets.sources.ids import IdSourceResource
from payout_assets.sources.polygon.resource import PolygonResource
from payout_assets.warehouse.resource import ClickHouseResource


def _cell(text: str) -> str:
    """Table cells cannot hold a pipe or a line break."""
    return text.replace("|", "\\|").replace("\n", " ")


def checks_table(results: list[CheckResult]) -> dg.MetadataValue:
    return md_table(
        ["status", "check", "detail", "fix"],
        [
            (
                f"**{r.status}**" if r.status is not Status.PASS else str(r.status),
                _cell(r.name),
                _cell(r.detail),
                _cell(r.fix) if r.status is not Status.PASS else "",
            )
            for r in results
        ],
    )


@dg.op(
    description=(
        "ClickHouse reachable and writable, source tables with the expected columns, the id "
        "source readable, the subgraph's _meta and its schema for GOLDSKY_DIALECT, and (with polygon in PAYOUT_SOURCES) the Polygon provider: chain id, contract code, finalized block, the eth_getLogs range it accepts. Fails on any "
        "FAIL; the table of results is in the output metadata (and the failure's)."
    ),
    out=dg.Out(dg.Nothing),
)
def preflight_checks(
    context: dg.OpExecutionContext,
    clickhouse: ClickHouseResource,
    goldsky: GoldskyResource,
    id_source: IdSourceResource,
    polygon: PolygonResource,
) -> None:
    results = run_preflight(inputs_from_resources(clickhouse, goldsky, id_source, polygon=polygon))
    for r in results:
        line = f"{r.status} {r.name}: {r.detail}" + (
            f" — fix: {r.fix}" if r.fix and r.status is not Status.PASS else ""
        )
        if r.status is Status.FAIL:
            context.log.error(line)
        elif r.status is Status.WARN:
            context.log.warning(line)
        else:
            context.log.info(line)
    counts = summary(results)
    metadata = {
        "checks": checks_table(results),
        "failed": counts[Status.FAIL],
        "warnings": counts[Status.WARN],
        "passed": counts[Status.PASS],
    }
    if counts[Status.FAIL]:
        names = ", ".join(r.name for r in results if r.status is Status.FAIL)
        raise dg.Failure(
            description=f"preflight: {counts[Status.FAIL]} check(s) failed: {names}",
            metadata=metadata,
        )
    context.add_output_metadata(metadata)


@dg.job(
    name="preflight",
    description=(
        "Check everything a backfill needs (ClickHouse, source tables, id source, subgraph) in "
        "seconds, before starting one; the same checks as `payout-backfill preflight`."
    ),
    tags={"kind": "preflight"},
)
def preflight() -> None:
    preflight_checks()
