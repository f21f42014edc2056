"""Why a shard failed, in lines an operator can act on, read from the Dagster instance.

The shard's run records everything needed (the failed blocking check's evaluation with its
figures, or the failed step's error), so this reads those records, not log files: each failed
blocking check becomes one line with the check, the figure and the limit, where the rows it
objects to are (a query to paste), and the setting that governs it; a failed step becomes one
line with its error. A run that ended without either (a killed process) says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from payout_assets.defs.partitions import shard_index
from payout_assets.warehouse.sql import statements

PARTITION_TAG = "dagster/partition"
_KEY = re.compile(r"^shard-\d+$")


@dataclass(frozen=True)
class CheckSetting:
    """A check governed by a setting: the metadata holding its figure and limit, the variable,
    and the query (in ``sql/``) listing the rows it objects to."""

    figure: str
    limit: str
    variable: str
    rows_sql: str | None


SETTINGS: dict[str, CheckSetting] = {
    "rejected_share": CheckSetting(
        figure="rejected_share",
        limit="threshold",
        variable="PAYOUT_MAX_REJECTED_SHARE",
        rows_sql="checks/staged_rejected.sql",
    ),
}


def _latest_run(instance: dg.DagsterInstance, ref: str) -> dg.DagsterRun | None:
    """``ref`` is a run id or a shard partition key (its newest run)."""
    if _KEY.match(ref):
        records = instance.get_run_records(
            filters=dg.RunsFilter(tags={PARTITION_TAG: ref}), limit=1
        )
        return records[0].dagster_run if records else None
    return instance.get_run_by_id(ref)


def rows_query(name: str, shard: int, run_id: str) -> str:
    """``sql/<name>`` on one line with its parameters filled in, ready to paste."""
    (statement,) = statements(name)
    code = " ".join(
        line.strip() for line in statement.splitlines() if not line.strip().startswith("--")
    )
    return code.replace("{shard:UInt16}", str(shard)).replace("{run_id:String}", f"'{run_id}'")


def _value(metadata: dict, key: str) -> object:
    entry = metadata.get(key)
    return getattr(entry, "value", entry)


def _check_line(label: str, run: dg.DagsterRun, evaluation: dg.AssetCheckEvaluation) -> str:
    name = f"{evaluation.asset_key.to_user_string()}/{evaluation.check_name}"
    line = f"{label}: blocking check {name} failed: {evaluation.description or 'no summary'}"
    setting = SETTINGS.get(evaluation.check_name)
    metadata = dict(evaluation.metadata)
    if setting is None:
        figures = ", ".join(
            f"{k}={v}"
            for k, v in ((k, _value(metadata, k)) for k in sorted(metadata))
            if isinstance(v, int | float)
        )
        return f"{line} ({figures}); the rows it names are on the asset's Checks tab (run {run.run_id})"
    figure, limit = _value(metadata, setting.figure), _value(metadata, setting.limit)
    line += f" ({setting.figure} {figure} > limit {limit}, {setting.variable})"
    partition = run.tags.get(PARTITION_TAG)
    if setting.rows_sql and partition:
        line += f"; the rows: {rows_query(setting.rows_sql, shard_index(partition), run.run_id)}"
    return (
        f"{line}; fix the source or raise {setting.variable} (now {limit}) if these rows are "
        "expected, then run again"
    )


def _step_error(event: dg.EventLogEntry) -> str | None:
    data = event.dagster_event.event_specific_data if event.dagster_event else None
    if data is None:
        return None
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    error = data.error
    if error is None or error.cls_name == "DagsterAssetCheckFailedError":
        return None  # the check's own evaluation says more
    while error.cls_name == "DagsterExecutionStepExecutionError" and error.cause is not None:
        error = error.cause  # the user code's own exception, not Dagster's wrapper
    message = error.message.strip().split("\n", 1)[0]
    return re.sub(rf"^[\w.]*\b{re.escape(error.cls_name or '')}: ", "", message)


def run_failure_lines(instance: dg.DagsterInstance, run: dg.DagsterRun, label: str) -> list[str]:
    """The lines for one failed run: its failed blocking checks, then its failed steps."""
    lines: list[str] = []
    for record in instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        blocking = evaluation.blocking and evaluation.severity == dg.AssetCheckSeverity.ERROR
        if blocking and not evaluation.passed:
            lines.append(_check_line(label, run, evaluation))
    for record in instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE
    ).records:
        entry = record.event_log_entry
        if message := _step_error(entry):
            step = entry.dagster_event.step_key if entry.dagster_event else "?"
            lines.append(f"{label}: step {step} failed: {message}")
    if not lines and run.status != dg.DagsterRunStatus.SUCCESS:
        lines.append(
            f"{label}: run {run.run_id} ended {run.status.value} with no error recorded (the "
            "process was killed or died); run again to retry it"
        )
    return lines


def shard_failure_lines(instance: dg.DagsterInstance, refs: Sequence[str]) -> list[str]:
    """Why each failed shard run failed, one line per failed blocking check or step, from the
    instance's records. ``refs``: run ids or shard partition keys (their newest run); runs that
    succeeded give no line."""
    lines: list[str] = []
    for ref in refs:
        run = _latest_run(instance, ref)
        if run is None:
            lines.append(f"{ref}: no Dagster run recorded")
            continue
        if run.status == dg.DagsterRunStatus.SUCCESS:
            continue
        lines += run_failure_lines(instance, run, run.tags.get(PARTITION_TAG, ref))
    return lines


def job_failure_lines(instance: dg.DagsterInstance, job_name: str) -> list[str]:
    """Why the newest run of an unpartitioned job (the snapshot, the view) failed; nothing when
    it succeeded or never ran."""
    records = instance.get_run_records(filters=dg.RunsFilter(job_name=job_name), limit=1)
    if not records or records[0].dagster_run.status == dg.DagsterRunStatus.SUCCESS:
        return []
    return run_failure_lines(instance, records[0].dagster_run, job_name)
