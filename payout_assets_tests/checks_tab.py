"""The asset Checks tab's data, read in process: the webserver's GraphQL schema
(``dagster_graphql``) executed against a test's instance and the project's code location, with
the query the page sends (``dagster_ui.ASSET_CHECKS_QUERY``). No webserver, no code server."""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster_graphql.test.utils import execute_dagster_graphql

from payout_assets_tests.dagster_ui import ASSET_CHECKS_QUERY

DefinitionsModule = "payout_assets.definitions"


def latest_check_executions(
    instance: dg.DagsterInstance, asset: str
) -> dict[str, dict[str, Any] | None]:
    """Check name -> ``executionForLatestMaterialization`` for ``asset``; ``None`` is what the
    Checks tab shows as "Not Evaluated"."""
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name=DefinitionsModule, attribute="defs"),
        location_name="payout_assets",
    )
    with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as process:
        result = execute_dagster_graphql(
            process.create_request_context(), ASSET_CHECKS_QUERY, {"assetKey": {"path": [asset]}}
        )
    if result.errors:
        raise AssertionError(f"GraphQL errors: {result.errors}")
    (node,) = result.data["assetNodes"]
    checks = node["assetChecksOrError"]
    assert checks["__typename"] == "AssetChecks", checks
    return {c["name"]: c["executionForLatestMaterialization"] for c in checks["checks"]}
