"""Every check, resolved from the assets' own resources and run in the order a backfill needs them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from payout_assets.preflight.goldsky import (
    check_snapshot_against_head,
    check_subgraph_meta,
    check_subgraph_schema,
)
from payout_assets.preflight.ids import check_ids_file
from payout_assets.preflight.polygon import check_polygon
from payout_assets.preflight.result import (
    CheckResult,
    Status,
    dsn_secrets,
    failed,
    scrub,
    settings_secrets,
)
from payout_assets.preflight.warehouse import (
    check_backfill_state,
    check_clickhouse_reachable,
    check_clickhouse_writable,
    check_source_table,
    check_universe,
)
from payout_assets.settings import shard_count, source_enabled
from payout_assets.sources.goldsky.client import (
    ClientSettings,
)
from payout_assets.sources.goldsky.resource import GoldskyResource
from payout_assets.sources.ids import IdSourceResource
from payout_assets.sources.polygon.resource import PolygonResource
from payout_assets.sources.polygon.rpc import RpcSettings
from payout_assets.warehouse import tables
from payout_assets.warehouse.resource import ClickHouseResource
from payout_assets.warehouse.store import ClickHouseStore, StoreError

#: The preflight's own bound on waiting for the embedded store's lock.
LOCK_TIMEOUT_S = 60.0


@dataclass
class PreflightInputs:
    """What the checks run against, already resolved from the resources (or the environment).

    ``problems`` are configuration errors found while resolving (a bad GOLDSKY_DIALECT, an
    unparseable DSN); the checks that need the broken input are skipped, the others still run.
    """

    store: ClickHouseStore | None
    settings: ClientSettings | None
    ids_file: str | None
    universe_sql: str
    shards: int | None
    problems: list[CheckResult] = field(default_factory=list)
    polygon: RpcSettings | None = None  # None when PAYOUT_SOURCES leaves the chain out
    secrets: list[str] = field(default_factory=list)


def inputs_from_resources(
    clickhouse: ClickHouseResource,
    goldsky: GoldskyResource,
    id_source: IdSourceResource,
    shards: Callable[[], int] = shard_count,
    polygon: PolygonResource | None = None,
) -> PreflightInputs:
    """Resolve the three resources the assets use (``clickhouse``, ``goldsky``, ``id_source``)
    into checkable inputs; a resource that cannot be resolved becomes a FAIL, not a crash."""
    problems: list[CheckResult] = []
    secrets: list[str] = []
    store: ClickHouseStore | None = None
    settings: ClientSettings | None = None
    dsn = clickhouse.dsn
    secrets += dsn_secrets(dsn)
    try:
        store = ClickHouseStore(dsn, lock_timeout_s=min(clickhouse.lock_timeout_s, LOCK_TIMEOUT_S))
    except StoreError as exc:
        problems.append(
            failed(
                "config: CLICKHOUSE_DSN",
                str(exc),
                "set CLICKHOUSE_DSN to chdb:///abs/path (embedded) or "
                "http(s)://user:password@host:port/db (a server)",
            )
        )
    try:
        settings = goldsky.settings()
    except (ValueError, TypeError) as exc:  # bad dialect, GOLDSKY_HEADERS not a JSON object
        problems.append(
            failed(
                "config: GOLDSKY_*",
                str(exc),
                "GOLDSKY_DIALECT is pnl or legacy; GOLDSKY_HEADERS is a JSON object such as "
                '{"X-Team": "payouts"}; see the README\'s configuration table',
            )
        )
    secrets += settings_secrets(settings)
    for value in (goldsky.api_key, goldsky.extra_headers):
        if isinstance(value, str) and len(value) >= 4:
            secrets.append(value)
    count: int | None = None
    try:
        count = shards()
    except ValueError as exc:
        problems.append(failed("config: PAYOUT_SHARDS", str(exc), "set PAYOUT_SHARDS to 1..256"))
    polygon_settings = None
    if polygon is not None and source_enabled("polygon"):
        try:
            polygon_settings = polygon.settings()
        except ValueError as exc:
            problems.append(failed("config: POLYGON_*", str(exc), "see the README's table"))
    return PreflightInputs(
        polygon=polygon_settings,
        store=store,
        settings=settings,
        ids_file=id_source.ids_file or None,
        universe_sql=id_source.universe_sql(),
        shards=count,
        problems=problems,
        secrets=secrets,
    )


def run_preflight(inputs: PreflightInputs) -> list[CheckResult]:
    """Every check, in the order a backfill needs them; checks that depend on a failed one are
    left out (its FAIL already says what to fix) so that the report is not a cascade."""
    results: list[CheckResult] = list(inputs.problems)
    snapshot: tables.Snapshot | None = None
    store_ok = False
    if inputs.store is not None:
        reachable = check_clickhouse_reachable(inputs.store)
        results.append(reachable)
        store_ok = reachable.status is not Status.FAIL
        if store_ok:
            results.append(check_clickhouse_writable(inputs.store))
            results.append(check_source_table(inputs.store, tables.SOURCE_TABLE))
            state, snapshot = check_backfill_state(inputs.store, inputs.shards)
            results.append(state)
    if inputs.ids_file:
        results.append(check_ids_file(inputs.ids_file))
    elif store_ok and inputs.store is not None:
        results.extend(check_universe(inputs.store, inputs.universe_sql))
    if inputs.settings is not None:
        head, meta = check_subgraph_meta(inputs.settings)
        results.append(head)
        if meta is not None:
            results.append(check_subgraph_schema(inputs.settings))
            if snapshot is not None:
                results.append(check_snapshot_against_head(snapshot, meta))
    if inputs.polygon is not None:
        results.extend(check_polygon(inputs.polygon))
    return scrub(results, inputs.secrets)
