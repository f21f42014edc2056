"""Helpers for driving the real Dagster UI stack from a test: ``dagster dev`` as a process
group and its GraphQL API (the same mutations the UI's buttons send); Chromium is in chromium.py.

Everything here bounds its waits and stops what it starts. ``dagster dev`` spawns a webserver,
a daemon and a code server, and the daemon's runs are more processes again; they take seconds
to exit on SIGTERM, so :func:`payout_standins.procs.stop_group` signals the whole group (``dagster dev`` is
started in its own session) and escalates to SIGKILL.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from payout_standins.procs import stop_group

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
FROM_UI_TAG = {"key": "dagster/from_ui", "value": "true"}  # what the UI adds to every launch
TERMINAL_RUN_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}
# BulkActionStatus values after which an asset backfill launches nothing more.
TERMINAL_BACKFILL_STATUSES = {
    "COMPLETED",
    "COMPLETED_SUCCESS",
    "COMPLETED_FAILED",
    "FAILED",
    "CANCELED",
}

T = TypeVar("T")


class UiTestError(AssertionError):
    """The stack did not reach the expected state; the message carries the evidence."""


# PAYOUT_REFRESH_CRON for dagster dev in tests: the schedules start RUNNING, and a test that
# crossed the hour met the hourly refresh's runs (seen at 06:00); this date comes once in 4 years
NEVER_DURING_A_TEST = "0 0 29 2 *"


def free_port() -> int:
    """A loopback port that was free a moment ago (the OS picks it, so parallel tests differ)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(probe: Callable[[], T | None], *, timeout_s: float, interval_s: float, what: str) -> T:
    """Call ``probe`` until it returns something other than ``None``; bounded in time *and*
    count, so a stuck clock or a probe that blocks cannot make the loop endless."""
    deadline = time.monotonic() + timeout_s
    attempts = max(1, int(timeout_s / interval_s) + 1)
    last_error: Exception | None = None
    for _ in range(attempts):
        try:
            value = probe()
        except (httpx.HTTPError, UiTestError) as exc:  # not up yet, or an answer not ready yet
            last_error, value = exc, None
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval_s)
    raise UiTestError(
        f"timed out after {timeout_s:.0f}s waiting for {what} (last error: {last_error})"
    )


# -- dagster dev ------------------------------------------------------------------------------


@dataclass
class DagsterDev:
    """``dagster dev -w workspace.yaml`` on loopback, with the environment a test chose.

    It runs from ``cwd`` (a scratch directory), not the repository: ``dagster dev`` loads a
    ``.env`` from its working directory *over* the environment it was given, and a developer's
    ``.env`` (``DAGSTER_HOME=$PWD/dagster_home``) would point the test at their real instance.
    The log file keeps the webserver's and daemon's output, so a failure can show it."""

    env: Mapping[str, str]
    cwd: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> DagsterDev:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    str(VENV_BIN / "dagster"),
                    "dev",
                    "-w",
                    str(REPO_ROOT / "workspace.yaml"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                ],
                cwd=self.cwd,
                env=dict(self.env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None

    def __enter__(self) -> DagsterDev:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, chars: int = 4000) -> str:
        """The end of dagster dev's output, for failure messages."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def _ensure_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(
                f"dagster dev exited with {self.proc.returncode}:\n{self.log_tail()}"
            )

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST to the webserver's /graphql as the UI does; raises on transport or GraphQL
        errors so callers only see ``data``."""
        self._ensure_alive()
        response = httpx.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": dict(variables or {})},
            timeout=30.0,
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise UiTestError(f"GraphQL errors: {json.dumps(body['errors'])[:2000]}")
        return dict(body["data"])

    def wait_until_ready(self, location: str, timeout_s: float = 240.0) -> None:
        """Until the code location has loaded and the daemons that run backfills and queued
        runs report healthy; the UI would otherwise accept a launch that nothing picks up."""

        def location_loaded() -> bool | None:
            self._ensure_alive()
            workspace = self.graphql(WORKSPACE_QUERY)["workspaceOrError"]
            entries = workspace.get("locationEntries") or []  # a PythonError while starting
            entry = next((e for e in entries if e["name"] == location), None)
            if entry is None or entry["loadStatus"] != "LOADED":
                return None
            loaded = entry["locationOrLoadError"]
            if loaded["__typename"] != "RepositoryLocation":
                raise AssertionError(f"code location {location} failed to load: {loaded}")
            return True

        def daemons_healthy() -> bool | None:
            self._ensure_alive()
            statuses = self.graphql(DAEMON_HEALTH_QUERY)["instance"]["daemonHealth"]
            healthy = {s["daemonType"] for s in statuses["allDaemonStatuses"] if s["healthy"]}
            return True if {"BACKFILL", "QUEUED_RUN_COORDINATOR"} <= healthy else None

        try:
            wait_for(location_loaded, timeout_s=timeout_s, interval_s=1.0, what="the code location")
            wait_for(daemons_healthy, timeout_s=timeout_s, interval_s=1.0, what="the daemons")
        except UiTestError as exc:
            raise UiTestError(f"{exc}\n--- dagster dev log ---\n{self.log_tail()}") from None

    # -- what the UI's buttons send ----------------------------------------------------------

    def asset_node(self, asset_path: Sequence[str]) -> dict[str, Any]:
        """The asset as the UI loads it: jobs, repository and partition keys."""
        node = self.graphql(ASSET_NODE_QUERY, {"assetKey": {"path": list(asset_path)}})
        asset = node["assetNodeOrError"]
        if asset["__typename"] != "AssetNode":
            raise UiTestError(f"no asset node for {asset_path}: {asset}")
        return dict(asset)

    def partition_keys(self, asset_path: Sequence[str]) -> list[str]:
        """Every partition key, as the partitions dialog offers them ("all partitions")."""
        return list(self.asset_node(asset_path)["partitionKeys"])

    def hidden_asset_job(self, asset_path: Sequence[str]) -> tuple[str, str, str]:
        """(location, repository, job) the UI launches an asset with: the hidden asset job."""
        asset = self.asset_node(asset_path)
        job = next(j for j in asset["jobNames"] if j.startswith("__ASSET_JOB"))
        repo = asset["repository"]
        return repo["location"]["name"], repo["name"], job

    def materialize(self, asset_path: Sequence[str], check_names: Sequence[str]) -> str:
        """The Materialize button on an unpartitioned asset: ``launchPipelineExecution`` on
        the hidden asset job with the asset and its checks selected. Returns the run id."""
        location, repository, job = self.hidden_asset_job(asset_path)
        key = {"path": list(asset_path)}
        params = {
            "mode": "default",
            "executionMetadata": {"tags": [FROM_UI_TAG]},
            "runConfigData": "{}",
            "selector": {
                "repositoryLocationName": location,
                "repositoryName": repository,
                "pipelineName": job,
                "assetSelection": [key],
                "assetCheckSelection": [{"assetKey": key, "name": n} for n in check_names],
            },
        }
        result = self.graphql(LAUNCH_RUN_MUTATION, {"executionParams": params})
        launched = result["launchPipelineExecution"]
        if launched["__typename"] != "LaunchRunSuccess":
            raise UiTestError(f"launchPipelineExecution failed: {launched}")
        return str(launched["run"]["runId"])

    def launch_partition_backfill(
        self, asset_paths: Sequence[Sequence[str]], partition_names: Sequence[str]
    ) -> str:
        """Materialize → partitions → Launch backfill, as LaunchAssetChoosePartitionsDialog
        sends it for assets of the hidden asset job. Returns the backfill id."""
        params = {
            "tags": [FROM_UI_TAG],
            "assetSelection": [{"path": list(p)} for p in asset_paths],
            "partitionNames": list(partition_names),
            "fromFailure": False,
        }
        result = self.graphql(LAUNCH_BACKFILL_MUTATION, {"backfillParams": params})
        launched = result["launchPartitionBackfill"]
        if launched["__typename"] != "LaunchBackfillSuccess":
            raise UiTestError(f"launchPartitionBackfill failed: {launched}")
        return str(launched["backfillId"])

    def dismiss_nux(self) -> None:
        """What the "Join the Dagster community" dialog's Skip button sends; without it the
        dialog covers every page of a fresh instance (and so every screenshot)."""
        if not self.graphql("mutation SetNuxSeen { setNuxSeen }")["setNuxSeen"]:
            raise UiTestError("setNuxSeen did not persist (is DAGSTER_HOME writable?)")

    def wait_for_run(self, run_id: str, timeout_s: float) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            run = self.graphql(RUN_QUERY, {"runId": run_id})["runOrError"]
            return run if run.get("status") in TERMINAL_RUN_STATUSES else None

        return wait_for(finished, timeout_s=timeout_s, interval_s=1.0, what=f"run {run_id}")

    def wait_for_backfill(self, backfill_id: str, timeout_s: float) -> dict[str, Any]:
        """Poll ``partitionBackfillOrError`` until the backfill is finished and none of its
        runs is still going (the daemon marks it complete on its next iteration)."""

        def finished() -> dict[str, Any] | None:
            self._ensure_alive()
            backfill = self.graphql(BACKFILL_QUERY, {"backfillId": backfill_id})
            backfill = backfill["partitionBackfillOrError"]
            if backfill["__typename"] != "PartitionBackfill":
                raise AssertionError(f"backfill {backfill_id}: {backfill}")
            done = backfill["status"] in TERMINAL_BACKFILL_STATUSES
            return backfill if done and not backfill["unfinishedRuns"] else None

        try:
            return wait_for(
                finished, timeout_s=timeout_s, interval_s=2.0, what=f"backfill {backfill_id}"
            )
        except UiTestError as exc:
            raise UiTestError(f"{exc}\n--- dagster dev log ---\n{self.log_tail()}") from None

    def check_executions(
        self, asset_path: Sequence[str], check_name: str, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The recorded executions of one asset check, newest first (the Checks tab's data)."""
        data = self.graphql(
            CHECK_EXECUTIONS_QUERY,
            {"assetKey": {"path": list(asset_path)}, "checkName": check_name, "limit": limit},
        )
        return list(data["assetCheckExecutions"])

    def checks_tab(self, asset_path: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """Check name -> ``executionForLatestMaterialization``, the field the Checks tab shows
        each check's status from ("Not Evaluated" when it is null)."""
        data = self.graphql(ASSET_CHECKS_QUERY, {"assetKey": {"path": list(asset_path)}})
        (node,) = data["assetNodes"]
        checks = node["assetChecksOrError"]
        if checks["__typename"] != "AssetChecks":
            raise UiTestError(f"no checks for {asset_path}: {checks}")
        return {c["name"]: c["executionForLatestMaterialization"] for c in checks["checks"]}


# -- the GraphQL documents (field names as in dagster_graphql's schema) -----------------------

WORKSPACE_QUERY = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
        }
      }
    }
  }
}
"""

DAEMON_HEALTH_QUERY = """
query DaemonHealth {
  instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } }
}
"""

ASSET_NODE_QUERY = """
query AssetNode($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode {
      jobNames
      partitionKeys
      repository { name location { name } }
    }
  }
}
"""

LAUNCH_RUN_MUTATION = """
mutation LaunchPipelineExecution($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""

LAUNCH_BACKFILL_MUTATION = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""

RUN_QUERY = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status tags { key value } }
    ... on PythonError { message }
  }
}
"""

BACKFILL_QUERY = """
query Backfill($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill {
      id
      status
      numPartitions
      partitionNames
      error { message }
      runs(limit: 100) { runId status tags { key value } }
      unfinishedRuns(limit: 100) { runId status }
    }
    ... on PythonError { message }
    ... on BackfillNotFoundError { message }
  }
}
"""

CHECK_EXECUTIONS_QUERY = """
query CheckExecutions($assetKey: AssetKeyInput!, $checkName: String!, $limit: Int!) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, limit: $limit) {
    runId
    status
    evaluation { success severity }
  }
}
"""

ASSET_CHECKS_QUERY = """
query AssetChecks($assetKey: AssetKeyInput!) {
  assetNodes(assetKeys: [$assetKey]) {
    assetChecksOrError {
      __typename
      ... on AssetChecks {
        checks {
          name
          executionForLatestMaterialization { runId status partition evaluation { success } }
        }
      }
    }
  }
}
"""
