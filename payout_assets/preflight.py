"""Pre-flight checks: everything a backfill needs, checked in seconds, before it starts.

The original scripts had a pre-flight check because the expensive failures were the late ones: a
wrong dialect found after an hour of requests, a missing table found at ingest time. Each check
here is a plain function returning :class:`CheckResult` rows (PASS / WARN / FAIL, what was seen,
and for anything not PASS the fix), so ``payout-backfill preflight`` and the Dagster job
``preflight`` run exactly the same code.

Every result goes through :func:`scrub` before anyone sees it: the DSN password, the API key and
custom header values are replaced by ``***`` even if a driver puts them into an error message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from clickhouse_connect.driver.exceptions import ClickHouseError

from payout_assets.config import shard_count
from payout_assets.redact import redact
from payout_assets.sources.goldsky.client import (
    ClientSettings,
    Dialect,
    GoldskyClient,
    SubgraphMeta,
    request_headers,
)
from payout_assets.sources.goldsky.errors import (
    GoldskyError,
    PermanentGoldskyError,
    RateLimitedError,
)
from payout_assets.sources.goldsky.resource import GoldskyResource
from payout_assets.sources.ids import IdSourceResource
from payout_assets.validate.ids import InvalidId, normalize_condition_id
from payout_assets.warehouse import tables
from payout_assets.warehouse.resource import ClickHouseResource
from payout_assets.warehouse.sql import load_sql, sql_dir
from payout_assets.warehouse.store import ClickHouseStore, StoreError, redact_dsn

QUERIES_DIR = Path(__file__).resolve().parent / "sources" / "goldsky" / "queries"

#: Fields of ``Condition`` each dialect's payout query selects (``payouts_<dialect>.graphql``).
REQUIRED_FIELDS: dict[Dialect, tuple[str, ...]] = {
    Dialect.PNL: ("id", "payoutNumerators", "payoutDenominator"),
    Dialect.LEGACY: (
        "id",
        "payoutNumerators",
        "payoutDenominator",
        "payouts",
        "resolutionTimestamp",
    ),
}

#: Columns the pipeline reads from each source table, with the type families that work
#: (wrappers such as Nullable/LowCardinality are allowed around them).
SOURCE_COLUMNS: dict[str, dict[str, str]] = {
    tables.SOURCE_TABLE: {
        "condition_id_norm": r"(Fixed)?String",
        "payout_numerators": r"Array\((Nullable\()?U?Int\d+",
        "payout_denominator": r"U?Int\d+",
        "winning_index": r"U?Int\d+",
        "resolved_at": r"DateTime",
    },
    "default.trades_raw": {"condition_id": r"(Fixed)?String"},
}

#: The preflight's own bounds: an unreachable endpoint must fail in seconds, not after the
#: backfill's retry budget (GOLDSKY_MAX_RETRY_S defaults to 5 minutes).
HTTP_TIMEOUT_S = 10.0
HTTP_ATTEMPTS = 2
LOCK_TIMEOUT_S = 60.0

_quiet = logging.getLogger("payout_assets.preflight.client")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False  # the client's retry warnings would print outside the table


class Status(StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class CheckResult:
    """One line of the preflight report; ``fix`` says what to do when it is not PASS."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "status": str(self.status),
            "detail": self.detail,
            "fix": self.fix,
        }


def passed(name: str, detail: str) -> CheckResult:
    return CheckResult(name, Status.PASS, detail)


def warned(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, Status.WARN, detail, fix)


def failed(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, Status.FAIL, detail, fix)


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
    secrets: list[str] = field(default_factory=list)


def dsn_secrets(dsn: str) -> list[str]:
    """The parts of a DSN that must never be printed (its password)."""
    try:
        password = urlsplit(dsn).password
    except ValueError:  # an unparseable DSN: redact_dsn-style masking in scrub() still applies
        return []
    return [password] if password else []


def settings_secrets(settings: ClientSettings | None) -> list[str]:
    if settings is None:
        return []
    values = [settings.api_key or "", *settings.headers.values()]
    return [v for v in values if len(v) >= 4]


def scrub(results: Iterable[CheckResult], secrets: Sequence[str]) -> list[CheckResult]:
    """The results with every secret (and any ``user:password@`` in a URL) replaced by ``***``."""
    return [
        replace(r, detail=redact(r.detail, secrets), fix=redact(r.fix, secrets)) for r in results
    ]


# -- building the inputs ------------------------------------------------------------------------


def inputs_from_resources(
    clickhouse: ClickHouseResource,
    goldsky: GoldskyResource,
    id_source: IdSourceResource,
    shards: Callable[[], int] = shard_count,
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
    return PreflightInputs(
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
    return scrub(results, inputs.secrets)


# -- ClickHouse ---------------------------------------------------------------------------------


def _store_fix(store: ClickHouseStore, message: str) -> str:
    if "locked by another process" in message:
        return (
            "another process holds the embedded store (a long query or a stuck run); wait for it, "
            "or stop it, then run the preflight again"
        )
    if store.embedded:
        return (
            f"check CLICKHOUSE_DSN (now {store.display_dsn}): the embedded store's directory must "
            "be writable by this user and not be open in a process outside payout-backfill"
        )
    return (
        f"check CLICKHOUSE_DSN (now {store.display_dsn}): is the server running and reachable "
        "from this host, are the user and password right, does the database exist? "
        "(http(s)://user:password@host:port/db, or chdb:///abs/path for an embedded store)"
    )


def check_clickhouse_reachable(store: ClickHouseStore) -> CheckResult:
    name = "clickhouse reachable"
    started = time.monotonic()
    try:
        ((version, database),) = store.query_file("preflight/server_version.sql")
    except (StoreError, ClickHouseError, OSError) as exc:
        message = str(exc)
        if store.display_dsn not in message:
            message = f"{store.display_dsn}: {message}"
        return failed(name, message, _store_fix(store, str(exc)))
    kind = "embedded" if store.embedded else "server"
    return passed(
        name,
        f"ClickHouse {version} ({kind}) at {store.display_dsn}, database {database}, "
        f"{time.monotonic() - started:.2f}s",
    )


def check_clickhouse_writable(store: ClickHouseStore) -> CheckResult:
    """Create a scratch table, insert, read back, drop: what the pipeline does on every run."""
    name = "clickhouse writable"
    params = {"name": f"preflight_{uuid.uuid4().hex[:12]}"}
    step = "create database payout_backfill and a scratch table"
    try:
        with store.session():
            try:
                store.ensure_room_for_ddl("the preflight's scratch table")
                store.run_file("preflight/scratch_create.sql", params)
                step = "insert into the scratch table"
                store.insert(
                    f"payout_backfill.{params['name']}", [(1, "a"), (2, "b")], ["n", "note"]
                )
                step = "read the scratch table back"
                ((rows, total),) = store.query_file("preflight/scratch_count.sql", params)
            except (StoreError, ClickHouseError):
                with contextlib.suppress(StoreError, ClickHouseError):
                    store.run_file("preflight/scratch_drop.sql", params)
                raise
            step = "drop the scratch table"
            store.run_file("preflight/scratch_drop.sql", params)
    except (StoreError, ClickHouseError, OSError) as exc:
        return failed(
            name,
            f"could not {step}: {exc}",
            "the CLICKHOUSE_DSN user needs CREATE DATABASE, CREATE TABLE, INSERT, SELECT, ALTER "
            "and DROP on database payout_backfill and INSERT on default.resolutions_external_ingest; "
            "grant them or use a user that has them",
        )
    if (int(rows), int(total)) != (2, 3):
        return failed(
            name,
            f"inserted 2 rows into a scratch table but read back {rows}",
            "the server does not return what was just written; check the cluster's replication "
            "or insert settings (e.g. async_insert without wait)",
        )
    return passed(name, "created, filled, read and dropped a scratch table in payout_backfill")


def table_columns(store: ClickHouseStore, table: str) -> dict[str, str]:
    database, _, name = table.rpartition(".")
    rows = store.query_file(
        "preflight/table_columns.sql", {"db": database or "default", "table": name}
    )
    return {str(n): str(t) for n, t in rows}


def _unwrap(type_name: str) -> str:
    """``LowCardinality(Nullable(String))`` → ``String``: wrappers do not change what is read."""
    for wrapper in ("LowCardinality(", "Nullable("):
        while type_name.startswith(wrapper) and type_name.endswith(")"):
            type_name = type_name[len(wrapper) : -1]
    return type_name


def column_problems(columns: Mapping[str, str], expected: Mapping[str, str]) -> list[str]:
    out: list[str] = []
    for column, pattern in expected.items():
        actual = columns.get(column)
        if actual is None:
            out.append(f"no column `{column}`")
        elif not re.match(pattern, _unwrap(actual)):
            out.append(f"`{column}` is {actual}")
    return out


def check_source_table(store: ClickHouseStore, table: str) -> CheckResult:
    name = f"source table {table}"
    demo_ddl = sql_dir() / "demo" / "source_tables.sql"
    try:
        columns = table_columns(store, table)
    except (StoreError, ClickHouseError) as exc:
        return failed(name, str(exc), _store_fix(store, str(exc)))
    if not columns:
        return failed(
            name,
            f"{table} does not exist in {store.display_dsn}",
            f"create it with {demo_ddl} (the demo does this) or point CLICKHOUSE_DSN at the "
            "database that has it",
        )
    problems = column_problems(columns, SOURCE_COLUMNS[table])
    if problems:
        wanted = ", ".join(
            f"{c} ({p.replace(chr(92), '')})" for c, p in SOURCE_COLUMNS[table].items()
        )
        return failed(
            name,
            f"{table} has the wrong columns: {'; '.join(problems)}",
            f"the pipeline reads {wanted}; compare the table with {demo_ddl} and fix its schema "
            "(or point CLICKHOUSE_DSN at the database whose table has them)",
        )
    return passed(
        name,
        f"{len(columns)} columns; the {len(SOURCE_COLUMNS[table])} the pipeline reads are there, "
        "with usable types",
    )


def check_backfill_state(
    store: ClickHouseStore, shards: int | None
) -> tuple[CheckResult, tables.Snapshot | None]:
    """The pipeline's own tables: absent before the first run (fine), or a snapshot to resume."""
    name = "backfill state"
    try:
        existing = {r[0] for r in store.query_file("status/pipeline_tables.sql")}
        snapshot = tables.current_snapshot(store) if "snapshots" in existing else None
    except (StoreError, ClickHouseError) as exc:
        return failed(name, str(exc), _store_fix(store, str(exc))), None
    if snapshot is None:
        return passed(
            name, "no backfill yet: the pipeline's tables are created by the first run"
        ), None
    detail = (
        f"snapshot {snapshot.generation[:8]} pinned to block {snapshot.block_number:,}, "
        f"{snapshot.distinct_ids:,} distinct ids in {snapshot.shard_count} shards"
    )
    if shards is not None and snapshot.shard_count != shards:
        return (
            warned(
                name,
                f"{detail}, but PAYOUT_SHARDS is {shards}",
                f"an unfinished backfill cannot resume with a different shard count: set "
                f"PAYOUT_SHARDS={snapshot.shard_count}, or start over with `payout-backfill run --fresh`",
            ),
            snapshot,
        )
    return passed(name, detail), snapshot


# -- the id source ------------------------------------------------------------------------------


def check_ids_file(path_text: str) -> CheckResult:
    """PAYOUT_IDS_FILE: readable, and how many of its lines are condition ids."""
    name = "id source (PAYOUT_IDS_FILE)"
    path = Path(path_text).expanduser()
    fix = "set PAYOUT_IDS_FILE to a readable text file with one condition id per line, or unset it to use sql/condition_universe.sql"
    lines = 0
    invalid = 0
    valid: set[str] = set()
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for raw in handle:
                if not raw.strip():
                    continue
                lines += 1
                cid = normalize_condition_id(raw)
                if isinstance(cid, InvalidId):
                    invalid += 1
                else:
                    valid.add(cid)
    except OSError as exc:
        return failed(name, f"cannot read {path}: {exc.strerror or exc}", fix)
    detail = f"{path}: {lines:,} ids, {len(valid):,} distinct valid, {invalid:,} invalid"
    if not valid:
        return failed(
            name,
            detail,
            "the file holds no condition id (64 hex digits, 0x optional, one per line); " + fix,
        )
    if invalid:
        return warned(
            name, detail, "invalid lines are recorded as invalid_id in the ledger and skipped"
        )
    return passed(name, detail)


def check_universe(store: ClickHouseStore, universe_sql: str) -> list[CheckResult]:
    """The universe query (sql/condition_universe.sql) runs, and how many ids it yields. When it
    fails, say whether ``default.trades_raw`` (what the shipped query reads) is the reason."""
    name = "id source (sql/condition_universe.sql)"
    sql = load_sql("preflight/universe_counts.sql").replace(
        "__UNIVERSE__", universe_sql.strip().rstrip(";")
    )
    started = time.monotonic()
    try:
        with store.session() as client:
            ((rows, valid, invalid),) = client.query(sql.strip().rstrip(";")).result_rows
    except (StoreError, ClickHouseError) as exc:
        message = str(exc)
        if "TIMEOUT_EXCEEDED" in message or "Timeout exceeded" in message:
            return [
                warned(
                    name,
                    "the query runs but counting its ids took over 20 s",
                    "nothing to fix for the backfill; expect missing_condition_ids to take a while",
                )
            ]
        results = [
            failed(
                name,
                f"the universe query failed: {message[:400]}",
                "fix sql/condition_universe.sql, or set PAYOUT_IDS_FILE to a file of ids",
            )
        ]
        table_check = check_source_table(store, "default.trades_raw")
        if table_check.status is not Status.PASS:
            results.append(
                replace(
                    table_check,
                    fix=table_check.fix
                    + "; or set PAYOUT_IDS_FILE (one id per line) / edit sql/condition_universe.sql",
                )
            )
        return results
    detail = (
        f"{int(rows):,} rows, {int(valid):,} distinct valid ids, {int(invalid):,} invalid rows "
        f"({time.monotonic() - started:.2f}s)"
    )
    if not valid:
        return [
            failed(
                name,
                detail,
                "the universe yields no condition id: fill default.trades_raw, fix "
                "sql/condition_universe.sql, or set PAYOUT_IDS_FILE",
            )
        ]
    return [passed(name, detail)]


# -- the subgraph -------------------------------------------------------------------------------


def _endpoint(settings: ClientSettings) -> str:
    return redact_dsn(settings.endpoint)


def preflight_settings(settings: ClientSettings) -> ClientSettings:
    """The configured settings with the preflight's short timeout and retry budget."""
    return replace(
        settings,
        timeout_s=min(settings.timeout_s, HTTP_TIMEOUT_S),
        max_attempts=HTTP_ATTEMPTS,
        max_retry_s=min(settings.max_retry_s, 5.0),
        backoff_initial_s=min(settings.backoff_initial_s, 0.2),
        backoff_max_s=1.0,
    )


def check_subgraph_meta(settings: ClientSettings) -> tuple[CheckResult, SubgraphMeta | None]:
    """``_meta``: the endpoint answers, its head block, deployment and ``hasIndexingErrors``."""
    name = "subgraph _meta"
    endpoint = _endpoint(settings)
    started = time.monotonic()
    try:
        with GoldskyClient(preflight_settings(settings), log=_quiet) as client:
            meta = client.meta()
    except RateLimitedError as exc:
        return (
            failed(
                name,
                f"{endpoint}: {exc}",
                "the endpoint is rate limiting this host: lower GOLDSKY_MAX_RPS, wait for running "
                "backfills to finish, or set GOLDSKY_API_KEY for a higher allowance",
            ),
            None,
        )
    except PermanentGoldskyError as exc:
        return failed(name, f"{endpoint}: {exc}", _permanent_fix(str(exc))), None
    except GoldskyError as exc:
        return (
            failed(
                name,
                f"{endpoint}: {exc}",
                f"check GOLDSKY_ENDPOINT (now {endpoint}): is it the subgraph's GraphQL URL "
                "(…/subgraphs/<name>/<version>/gn), up, and reachable from this host? "
                "Raise GOLDSKY_TIMEOUT_S for a slow endpoint",
            ),
            None,
        )
    detail = (
        f"{endpoint}: head block {meta.block_number:,}"
        + (
            f" ({time.strftime('%Y-%m-%d %H:%M', time.gmtime(meta.block_timestamp))} UTC)"
            if meta.block_timestamp
            else ""
        )
        + f", deployment {meta.deployment or '?'}"
    )
    took = f" ({time.monotonic() - started:.2f}s)"
    if meta.has_indexing_errors:
        return (
            warned(
                name,
                detail + ", hasIndexingErrors: true" + took,
                "the subgraph hit an indexing error: payouts after the failing block may be "
                "missing; check the deployment's status on Goldsky, or use a healthy deployment",
            ),
            meta,
        )
    return passed(name, detail + ", no indexing errors" + took), meta


def _permanent_fix(message: str) -> str:
    """The client's permanent errors end with their fix after a dash or a semicolon."""
    for separator in (" — ", "; "):
        if separator in message:
            return message.rsplit(separator, 1)[1]
    return "check GOLDSKY_ENDPOINT, GOLDSKY_API_KEY and GOLDSKY_DIALECT"


@dataclass(frozen=True)
class _Answer:
    data: Mapping[str, Any] | None
    errors: list[str]
    problem: str | None = None


def _post(http: httpx.Client, endpoint: str, query: str, variables: Mapping[str, Any]) -> _Answer:
    try:
        response = http.post(
            endpoint, content=json.dumps({"query": query, "variables": dict(variables)})
        )
    except httpx.HTTPError as exc:
        return _Answer(None, [], f"{type(exc).__name__}: {exc}")
    if response.status_code != 200:
        return _Answer(None, [], f"HTTP {response.status_code}: {response.text[:200]}")
    try:
        payload = response.json()
    except ValueError:
        return _Answer(None, [], f"answer is not JSON: {response.text[:80]!r}")
    if not isinstance(payload, dict):
        return _Answer(None, [], "answer is JSON but not an object")
    errors = [
        str(e.get("message", e)) if isinstance(e, dict) else str(e)
        for e in payload.get("errors") or []
    ]
    data = payload.get("data")
    return _Answer(data if isinstance(data, dict) else None, errors)


_NO_FIELD = re.compile(r"has no field `(\w+)`|Cannot query field ['\"](\w+)['\"]")


def _missing_fields(errors: Iterable[str]) -> list[str]:
    out: list[str] = []
    for message in errors:
        for match in _NO_FIELD.finditer(message):
            out.append(match.group(1) or match.group(2))
    return out


def _dialect_of(fields: set[str]) -> Dialect | None:
    """The dialect a ``Condition`` with these fields speaks; legacy has decimal ``payouts``, which
    a pnl client would never ask for (so a legacy endpoint read as pnl loses those payouts)."""
    if set(REQUIRED_FIELDS[Dialect.LEGACY]) <= fields:
        return Dialect.LEGACY
    if set(REQUIRED_FIELDS[Dialect.PNL]) <= fields:
        return Dialect.PNL
    return None


def _switch_fix(served: Dialect) -> str:
    if served is Dialect.LEGACY:
        return (
            "this endpoint serves the legacy schema (decimal `payouts`, nullable numerators): set "
            "GOLDSKY_DIALECT=legacy, or point GOLDSKY_ENDPOINT at pnl-subgraph"
        )
    return (
        "this endpoint serves pnl-subgraph (no `payouts` / `resolutionTimestamp`): unset "
        "GOLDSKY_DIALECT or set GOLDSKY_DIALECT=pnl, or point GOLDSKY_ENDPOINT at the legacy subgraph"
    )


def _http_client(settings: ClientSettings, transport: httpx.BaseTransport | None) -> httpx.Client:
    return httpx.Client(
        timeout=httpx.Timeout(min(settings.timeout_s, HTTP_TIMEOUT_S)),
        headers=request_headers(settings.api_key, settings.headers),
        transport=transport,
    )


def _probe(http: httpx.Client, endpoint: str, dialect: Dialect) -> _Answer:
    """Send the backfill's own payout query with no ids: graph-node validates it against its
    schema (fields, arguments, ``block``) and answers an empty list, so nothing is fetched."""
    query = (QUERIES_DIR / f"payouts_{dialect.value}.graphql").read_text(encoding="utf-8")
    return _post(http, endpoint, query, {"ids": [], "first": 1, "block": None})


def check_subgraph_schema(
    settings: ClientSettings, transport: httpx.BaseTransport | None = None
) -> CheckResult:
    """The ``Condition`` fields the configured dialect needs, by introspection; where the endpoint
    does not answer introspection, by sending each dialect's payout query with no ids."""
    dialect = settings.dialect
    name = f"subgraph schema ({dialect.value} dialect)"
    endpoint = _endpoint(settings)
    needed = REQUIRED_FIELDS[dialect]
    with _http_client(settings, transport) as http:
        introspection = _post(
            http,
            settings.endpoint,
            (QUERIES_DIR / "introspect_condition.graphql").read_text(encoding="utf-8"),
            {},
        )
        if introspection.problem:
            return failed(
                name,
                f"{endpoint}: introspection failed: {introspection.problem}",
                "check GOLDSKY_ENDPOINT and GOLDSKY_API_KEY",
            )
        type_info = (introspection.data or {}).get("__type")
        own = _probe(http, settings.endpoint, dialect)
        if isinstance(type_info, dict) and isinstance(type_info.get("fields"), list):
            fields = {str(f.get("name")) for f in type_info["fields"] if isinstance(f, dict)}
            how = "by introspection"
            served = _dialect_of(fields)
        else:
            # No introspection (disabled, or a server that hides the type): the two probes tell
            # the dialects apart, since only legacy has `payouts`.
            other = Dialect.LEGACY if dialect is Dialect.PNL else Dialect.PNL
            probes = {dialect: own, other: _probe(http, settings.endpoint, other)}
            how = "by probe queries: the endpoint does not answer introspection"
            if own.problem:
                return failed(
                    name,
                    f"{endpoint}: the {dialect.value} payout query got no answer: {own.problem}",
                    "check GOLDSKY_ENDPOINT and GOLDSKY_API_KEY",
                )
            ok = {d for d, a in probes.items() if a.problem is None and not a.errors}
            served = Dialect.LEGACY if Dialect.LEGACY in ok else Dialect.PNL if ok else None
            fields = set(needed) - set(_missing_fields(own.errors))
    missing = [f for f in needed if f not in fields]
    if served is not None and served is not dialect:
        return failed(
            name,
            f"Condition fits the {served.value} dialect, GOLDSKY_DIALECT is "
            f"{dialect.value}"
            + (f" (missing: {', '.join(missing)})" if missing else "")
            + f" ({how})",
            _switch_fix(served),
        )
    if missing or served is None:
        return failed(
            name,
            f"Condition lacks {', '.join(missing) or 'the payout fields'} ({how})"
            + (f"; {'; '.join(own.errors)[:300]}" if own.errors else ""),
            "GOLDSKY_ENDPOINT does not serve Polymarket conditions with payouts: point it at "
            "pnl-subgraph (…/pnl-subgraph/<version>/gn), or at the legacy subgraph with "
            "GOLDSKY_DIALECT=legacy",
        )
    if own.problem or own.errors:
        detail = own.problem or "; ".join(own.errors)
        return failed(
            name,
            f"{endpoint}: the {dialect.value} payout query was refused: {detail[:300]}",
            _permanent_fix(detail) if own.errors else "check GOLDSKY_ENDPOINT and GOLDSKY_API_KEY",
        )
    return passed(name, f"Condition has {', '.join(needed)}; the payout query validates ({how})")


def check_snapshot_against_head(snapshot: tables.Snapshot, meta: SubgraphMeta) -> CheckResult:
    """A backfill that resumes stays pinned to its snapshot block: the endpoint must have it."""
    name = "snapshot vs subgraph"
    if meta.block_number < snapshot.block_number:
        return failed(
            name,
            f"the current snapshot is pinned to block {snapshot.block_number:,} but the endpoint "
            f"has only indexed up to {meta.block_number:,}",
            "point GOLDSKY_ENDPOINT at the deployment the snapshot was taken from, or start over "
            "with `payout-backfill run --fresh`",
        )
    if snapshot.deployment and meta.deployment and snapshot.deployment != meta.deployment:
        return warned(
            name,
            f"the current snapshot came from deployment {snapshot.deployment}, the endpoint "
            f"serves {meta.deployment}",
            "a resumed backfill mixes deployments; run `payout-backfill run --fresh` to take a "
            "new snapshot from this one",
        )
    return passed(
        name,
        f"snapshot block {snapshot.block_number:,} ≤ head {meta.block_number:,}, same deployment",
    )


def summary(results: Sequence[CheckResult]) -> dict[Status, int]:
    return {s: sum(1 for r in results if r.status is s) for s in Status}


def ok(results: Sequence[CheckResult]) -> bool:
    return not any(r.status is Status.FAIL for r in results)
