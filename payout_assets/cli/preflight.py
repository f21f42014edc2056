"""``payout-backfill preflight``: the checks of :mod:`payout_assets.preflight`, as a table.

The inputs come from the same place the Dagster runs get theirs (the resource bindings in
``payout_assets/defs/resources.py``, resolved from the environment), so a PASS here means the
configuration a backfill will use works, not a look-alike of it. Exit code 1 on any FAIL.
"""

from __future__ import annotations

import logging
import os
import shutil
import textwrap
import time
from collections.abc import Sequence

import dagster as dg

from payout_assets.preflight.result import (
    CheckResult,
    Status,
    dsn_secrets,
    failed,
    ok,
    scrub,
    summary,
)
from payout_assets.preflight.run import PreflightInputs, inputs_from_resources, run_preflight
from payout_assets.redact import redact
from payout_assets.settings import clickhouse_dsn
from payout_assets.sources.ids import IdSourceResource
from payout_assets.warehouse.resource import ClickHouseResource
from payout_assets.warehouse.store import ClickHouseStore, StoreError


def quiet_drivers() -> None:
    """clickhouse-connect logs "Unexpected Http Driver Exception" on a refused connection; the
    check's own line already says it, with the fix, so the driver's line would only be noise."""
    for name in ("clickhouse_connect", "httpx", "httpcore"):
        driver = logging.getLogger(name)
        driver.addHandler(logging.NullHandler())
        driver.propagate = False


def load_inputs() -> PreflightInputs:
    """The resources a run would get, resolved from the environment; a binding that cannot be
    built (e.g. GOLDSKY_MAX_RPS=fast) is reported as a FAIL and the other checks still run."""
    from payout_assets.defs.resources import resources

    try:
        loaded = resources() if callable(resources) else resources
        with dg.build_resources(loaded.resources) as built:
            return inputs_from_resources(
                built.clickhouse, built.goldsky, built.id_source, polygon=built.polygon
            )
    except (ValueError, TypeError, dg.DagsterError) as exc:
        dsn = clickhouse_dsn()
        problem = failed(
            "config: environment",
            str(exc),
            "fix the variable named above; the README's configuration table lists each one",
        )
        store: ClickHouseStore | None = None
        try:
            store = ClickHouseResource(dsn=dsn).store()
        except StoreError:
            store = None
        id_source = IdSourceResource(ids_file=os.environ.get("PAYOUT_IDS_FILE") or None)
        return PreflightInputs(
            store=store,
            settings=None,
            ids_file=id_source.ids_file,
            universe_sql=id_source.universe_sql(),
            shards=None,
            problems=[problem],
            secrets=[
                *dsn_secrets(dsn),
                *[v for k in ("GOLDSKY_API_KEY", "GOLDSKY_HEADERS") if (v := os.environ.get(k))],
            ],
        )


def render(results: Sequence[CheckResult], width: int | None = None) -> str:
    """One block per check: status and name, what was seen, and the fix under anything that is
    not PASS. Wrapped with a hanging indent; URLs and paths are never split."""
    width = width or max(80, shutil.get_terminal_size((120, 24)).columns)
    lines: list[str] = []
    for r in results:
        lines += textwrap.wrap(
            f"{r.name}: {r.detail}",
            width,
            initial_indent=f"{r.status!s:<4}  ",
            subsequent_indent=" " * 6,
            break_long_words=False,
            break_on_hyphens=False,
        )
        if r.fix and r.status is not Status.PASS:
            lines += textwrap.wrap(
                r.fix,
                width,
                initial_indent=" " * 6 + "fix: ",
                subsequent_indent=" " * 11,
                break_long_words=False,
                break_on_hyphens=False,
            )
    return "\n".join(lines)


def run_preflight_cli() -> int:
    quiet_drivers()
    started = time.monotonic()
    inputs = load_inputs()
    dsn = inputs.store.display_dsn if inputs.store is not None else "(not configured)"
    endpoint = redact(inputs.settings.endpoint) if inputs.settings is not None else "?"
    dialect = inputs.settings.dialect.value if inputs.settings is not None else "?"
    header = scrub(
        [
            CheckResult(
                "header",
                Status.PASS,
                f"preflight: CLICKHOUSE_DSN={dsn}  GOLDSKY_ENDPOINT={endpoint}  "
                f"GOLDSKY_DIALECT={dialect}  id source: "
                f"{inputs.ids_file or 'sql/condition_universe.sql'}",
            )
        ],
        inputs.secrets,
    )[0].detail
    print(header, flush=True)
    results = run_preflight(inputs)
    print(render(results))
    counts = summary(results)
    verdict = "OK" if ok(results) else "FAILED"
    print(
        f"{verdict}: {counts[Status.FAIL]} FAIL, {counts[Status.WARN]} WARN, "
        f"{counts[Status.PASS]} PASS in {time.monotonic() - started:.1f}s"
    )
    return 0 if ok(results) else 1
