"""The chain source's part of ``payout-backfill run``: register the block ranges up to the
finalized block, then scan every range not yet complete, up to ten ranges per run (as a UI
backfill would), alongside the subgraph's shards."""

from __future__ import annotations

from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path

import dagster as dg

from payout_assets.cli import launcher
from payout_assets.defs.polygon import RANGES_PER_RUN, plan_scan
from payout_assets.defs.resources import polygon_resource
from payout_assets.sources.polygon.errors import RpcError
from payout_assets.sources.polygon.resource import PolygonResource

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


class ScanNotStarted(RuntimeError):
    """The provider could not be asked for its finalized block: nothing was launched."""


def _resolved() -> PolygonResource:
    resource = polygon_resource()
    return resource.process_config_and_initialize()  # EnvVar fields read now, as a run would


def _plan(instance: dg.DagsterInstance) -> tuple[list[str], int]:
    """``plan_scan`` with the environment's provider; no finalized block, no scan."""
    try:
        return plan_scan(instance, _resolved())
    except RpcError as exc:
        raise ScanNotStarted(
            f"the Polygon provider did not give its finalized block: {exc}"
        ) from None


def start_scans(
    instance: dg.DagsterInstance, log_dir: Path, say: Callable[[str], None]
) -> dict[str, BaseProcess]:
    """One ``scan_polygon`` run per group of up to ten consecutive ranges to scan."""
    keys, finalized = _plan(instance)
    say(f"scanning {len(keys)} Polygon block ranges up to finalized block {finalized:,}")
    procs: dict[str, BaseProcess] = {}
    for start in range(0, len(keys), RANGES_PER_RUN):
        group = keys[start : start + RANGES_PER_RUN]
        name = f"polygon {group[0]}..{group[-1]}" if len(group) > 1 else f"polygon {group[0]}"
        tags = {RANGE_START_TAG: group[0], RANGE_END_TAG: group[-1]}
        procs[name] = launcher.start(
            "scan_polygon", None, log_dir / f"{name}.log".replace(" ", "-"), tags
        )
    return procs
