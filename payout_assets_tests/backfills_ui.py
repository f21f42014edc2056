"""The UI's Backfills page, read the way the page reads it: Dagster's GraphQL schema (the one
the webserver serves), executed in this process against an instance, with the project's code
location loaded from workspace.yaml in a code server, as ``dagster dev`` loads it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from unittest import mock

import dagster as dg
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

from payout_assets.settings import PROJECT_ROOT

# The fields the Backfills table and a backfill's page read (status, partitions, per-asset
# partition counts, runs).
BACKFILLS_QUERY = """
query Backfills {
  partitionBackfillsOrError(limit: 50) {
    __typename
    ... on PartitionBackfills {
      results {
        id
        status
        title
        isAssetBackfill
        numPartitions
        partitionNames
        timestamp
        endTimestamp
        tags { key value }
        assetSelection { path }
        error { message }
        runs(limit: 100) { runId status tags { key value } }
        unfinishedRuns(limit: 100) { runId }
        assetBackfillData {
          assetBackfillStatuses {
            __typename
            ... on AssetPartitionsStatusCounts {
              assetKey { path }
              numPartitionsTargeted
              numPartitionsInProgress
              numPartitionsMaterialized
              numPartitionsFailed
            }
            ... on UnpartitionedAssetStatus {
              assetKey { path }
              inProgress
              materialized
              failed
            }
          }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

Query = Callable[[str], dict[str, Any]]


@contextmanager
def ui_graphql(
    env: Mapping[str, str],
) -> Iterator[tuple[Query, dg.DagsterInstance, WorkspaceProcessContext]]:
    """(query, instance, workspace process context) for the instance at ``env``'s DAGSTER_HOME;
    the code server starts with ``env`` (shard count, store), so it sees what the CLI saw."""
    with mock.patch.dict(os.environ, dict(env)):
        instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
        try:
            with define_out_of_process_context(
                str(PROJECT_ROOT / "workspace.yaml"), None, instance
            ) as context:

                def query(text: str) -> dict[str, Any]:
                    result = execute_dagster_graphql(context, text)
                    return dict(result.data)

                yield query, instance, context.process_context
        finally:
            instance.dispose()


def backfills(query: Query) -> list[dict[str, Any]]:
    """Every backfill, newest first, as the Backfills page lists them."""
    answer = query(BACKFILLS_QUERY)["partitionBackfillsOrError"]
    assert answer["__typename"] == "PartitionBackfills", answer
    return list(answer["results"])


def statuses_by_asset(backfill: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The per-asset partition counts of an asset backfill, keyed by the asset's name."""
    return {
        "/".join(s["assetKey"]["path"]): s
        for s in backfill["assetBackfillData"]["assetBackfillStatuses"]
    }
