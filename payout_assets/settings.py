"""Every setting, read from the environment in one module, and checked before anything starts.

Everything a user can change is an environment variable (see the README's table). Values that
Dagster needs while it *loads* the code location (the shard count fixes the partition keys) are
read here; values a run needs are passed to resources through ``dg.EnvVar`` so the UI shows the
variable's name rather than its (possibly secret) value.

Why check up front and in one place: a bad value otherwise surfaces deep inside whatever reads it
first (a traceback while Dagster loads the partitions, a failed snapshot run whose reason sits
in a log file, a shard that starts and then cannot reach the endpoint). Here each problem is one
line naming the variable, what is wrong with it, and the fix; the CLI prints them and exits
non-zero before a run, a store session or a process starts.

Values are never echoed when they may hold a secret (``GOLDSKY_API_KEY``, ``GOLDSKY_HEADERS``),
and passwords in URLs are shown as ``***``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from urllib.parse import urlsplit

import click
import dagster as dg

from payout_assets.redact import redact
from payout_assets.warehouse.ddl import cluster_problem

DEFAULT_GOLDSKY_ENDPOINT = (
    "https://api.goldsky.com/api/public/project_cl6mb8i9h0003e201j6li0diw"
    "/subgraphs/pnl-subgraph/0.0.14/gn"
)
DEFAULT_SHARDS = 8
DEFAULT_MAX_RPS = 10.0
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def dagster_home() -> Path:
    """The Dagster instance directory; the embedded ClickHouse store lives inside it by default."""
    home = os.environ.get("DAGSTER_HOME") or str(PROJECT_ROOT / "dagster_home")
    return Path(home).resolve()


def default_clickhouse_dsn() -> str:
    return f"chdb://{dagster_home() / 'clickhouse'}"


def clickhouse_dsn() -> str:
    """CLICKHOUSE_DSN, or the embedded store in the Dagster home when it is unset or empty: the
    one fallback every command and the definitions use."""
    return os.environ.get("CLICKHOUSE_DSN") or default_clickhouse_dsn()


def instance_db_url() -> str | None:
    """DAGSTER_PG_URL: the instance's PostgreSQL, where locks are taken across hosts (unset:
    the single-machine instance, locks are files)."""
    return os.environ.get("DAGSTER_PG_URL") or None


def clickhouse_cluster() -> str | None:
    """CLICKHOUSE_CLUSTER: the self-managed cluster the schema is created on (unset: none)."""
    return os.environ.get("CLICKHOUSE_CLUSTER") or None


def shard_count() -> int:
    """Number of worker shards (static partitions); read at load time because it names them."""
    raw = os.environ.get("PAYOUT_SHARDS", str(DEFAULT_SHARDS))
    try:
        count = int(raw)
    except ValueError:
        raise ValueError(f"PAYOUT_SHARDS must be a whole number, got {raw!r}") from None
    if not 1 <= count <= 256:
        raise ValueError(f"PAYOUT_SHARDS must be between 1 and 256, got {count}")
    return count


def incremental_enabled() -> bool:
    """PAYOUT_INCREMENTAL: 0 re-asks every missing id, 1 (default) skips ids unchanged since."""
    return os.environ.get("PAYOUT_INCREMENTAL", "1") != "0"


def refresh_cron() -> str:
    """PAYOUT_REFRESH_CRON: when the schedule takes a new snapshot (hourly by default)."""
    return os.environ.get("PAYOUT_REFRESH_CRON") or "0 * * * *"


def max_rejected_share() -> float:
    """PAYOUT_MAX_REJECTED_SHARE: the share of rejected rows the checks tolerate (1%)."""
    return float(os.environ.get("PAYOUT_MAX_REJECTED_SHARE") or "0.01")


SOURCES = ("goldsky", "polygon")


def sources() -> tuple[str, ...]:
    """PAYOUT_SOURCES: the comma list of sources a backfill reads (default: both)."""
    raw = os.environ.get("PAYOUT_SOURCES") or ",".join(SOURCES)
    return tuple(dict.fromkeys(s.strip().lower() for s in raw.split(",") if s.strip()))


def source_enabled(name: str) -> bool:
    return name in sources()


def env_or_default(name: str, default: str) -> str | dg.EnvVar:
    """An ``EnvVar`` when the variable is set (the UI then shows its name, never its value),
    otherwise the documented default, so the project runs with no configuration at all."""
    return dg.EnvVar(name) if os.environ.get(name) else default


# Bounds of the reachability probes: long enough for a slow TLS handshake, short enough that a
# mistyped host is reported in seconds rather than after a shard's retry budget.
PROBE_TIMEOUT_S = 5.0
# How much of an ids file is read to tell text from binary; the rest is read by the snapshot.
SNIFF_BYTES = 64 * 1024


class Scope(Enum):
    """What a command reads. ``LOAD``: what loading the Dagster definitions reads (so a bad value
    there stops ``dagster`` too). ``STORE``: where the data is. ``RUN``: the rest of a backfill's
    settings. ``REACH``: the endpoint and a ClickHouse server answer, and the ids file has ids.
    ``SERVER``: a ClickHouse server answers (for commands that read the store but not the endpoint)."""

    LOAD = "load"
    STORE = "store"
    RUN = "run"
    REACH = "reach"
    SERVER = "server"


COMMAND_SCOPES: dict[str, frozenset[Scope]] = {
    "run": frozenset(Scope),
    "preflight": frozenset({Scope.LOAD, Scope.STORE, Scope.RUN}),  # it probes the rest itself
    "status": frozenset({Scope.LOAD, Scope.STORE, Scope.SERVER}),
    "verify": frozenset({Scope.STORE, Scope.SERVER}),
    "dev": frozenset({Scope.LOAD}),
    "schema": frozenset({Scope.STORE}),
}


class SettingsError(click.ClickException):
    """Raised while Dagster loads the definitions with a bad setting. Dagster's command lines are
    click programs, which print a ``ClickException`` as one ``Error: ...`` line and exit 1 instead
    of a traceback through Dagster's loader; a code server shows its message as the load error."""


def raise_on_load_problems() -> None:
    """For ``payout_assets.definitions``: stop before any module reads a bad value."""
    if found := load_problems():
        raise SettingsError("; ".join(found))


def _env(name: str) -> str | None:
    """The variable's value, or None when unset or empty (an empty value means the default)."""
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def _number_problem(
    name: str, minimum: float, whole: bool = False, maximum: float | None = None
) -> str | None:
    raw = _env(name)
    if raw is None:
        return None
    kind = "a whole number" if whole else "a number"
    bounds = f"≥ {minimum:g}" if maximum is None else f"between {minimum:g} and {maximum:g}"
    fix = f"set {name} to {kind} {bounds}, or unset it for the default"
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        return f"{name}={raw!r} is not {kind}: {fix}"
    if value != value or value < minimum or (maximum is not None and value > maximum):
        return f"{name}={raw!r} is out of range: {fix}"
    return None


def shards_problem() -> str | None:
    """PAYOUT_SHARDS names the partitions, so Dagster cannot even load with a bad one."""
    if _number_problem("PAYOUT_SHARDS", 1, whole=True, maximum=256) is None:
        return None
    return (
        f"PAYOUT_SHARDS={_env('PAYOUT_SHARDS')!r} is not a whole number from 1 to 256: set it to "
        f"the number of shards (default {DEFAULT_SHARDS}), or unset it"
    )


def _cron_problem() -> str | None:
    raw = _env("PAYOUT_REFRESH_CRON")
    if raw is None:
        return None
    from dagster._utils.schedules import is_valid_cron_string

    if is_valid_cron_string(raw):
        return None
    return (
        f"PAYOUT_REFRESH_CRON={raw!r} is not a cron schedule: set it to five cron fields "
        "(e.g. '0 * * * *', hourly), or unset it"
    )


def load_problems() -> list[str]:
    """What ``payout_assets.definitions`` reads while it loads (partitions, resources, schedule)."""
    problems = [
        shards_problem(),
        _number_problem("GOLDSKY_MAX_RPS", 0.001),
        _number_problem("GOLDSKY_CONCURRENCY", 1, whole=True),
        _number_problem("GOLDSKY_TIMEOUT_S", 0.001),
        _number_problem("GOLDSKY_MAX_ATTEMPTS", 1, whole=True),
        _number_problem("GOLDSKY_MAX_RETRY_S", 0),
        _number_problem("GOLDSKY_BACKOFF_S", 0),
        _cron_problem(),
        _sources_problem(),
        _number_problem("POLYGON_MAX_RPS", 0.001),
        _number_problem("POLYGON_START_BLOCK", 0, whole=True),
        _number_problem("POLYGON_RANGE_BLOCKS", 1, whole=True),
        _number_problem("POLYGON_MAX_RANGE", 1, whole=True),
        _number_problem("POLYGON_BATCH_SIZE", 1, whole=True),
        _number_problem("POLYGON_FINALITY_DEPTH", 0, whole=True),
        _number_problem("POLYGON_TIMEOUT_S", 0.001),
        _number_problem("POLYGON_MAX_ATTEMPTS", 1, whole=True),
        _number_problem("POLYGON_MAX_RETRY_S", 0),
        _number_problem("POLYGON_BACKOFF_S", 0),
        *shared_services_problems(),
    ]
    return [p for p in problems if p]


INSTANCE_FOR_SEVERAL_HOSTS = PROJECT_ROOT / "deploy" / "dagster.yaml"


def shared_services_problems() -> list[str]:
    """DAGSTER_PG_URL and PAYOUT_REDIS_URL, the services runs on several hosts share: each a URL
    of its kind, and with DAGSTER_PG_URL an instance that keeps its storage in PostgreSQL (else
    each host would checkpoint in its own SQLite files while the shard locks are shared)."""
    found = []
    pg, redis_url = instance_db_url(), _env("PAYOUT_REDIS_URL")
    if pg is not None and urlsplit(pg).scheme not in {"postgresql", "postgres"}:
        found.append(
            f"DAGSTER_PG_URL={redact(pg)!r} is not a PostgreSQL URL: set it to "
            "postgresql://user:password@host:5432/dagster, or unset it for the single-machine "
            "instance"
        )
    elif pg is not None:
        settings = dagster_home() / "dagster.yaml"
        if settings.exists() and "postgres" not in settings.read_text():
            found.append(
                f"DAGSTER_PG_URL is set but {settings} keeps the instance in SQLite: copy "
                f"{INSTANCE_FOR_SEVERAL_HOSTS.relative_to(PROJECT_ROOT)} there (or use a new "
                "DAGSTER_HOME, which gets it), or unset DAGSTER_PG_URL"
            )
    if redis_url is not None and urlsplit(redis_url).scheme not in {"redis", "rediss", "unix"}:
        found.append(
            f"PAYOUT_REDIS_URL={redact(redis_url)!r} is not a Redis URL: set it to "
            "redis://host:6379/0 (rediss:// for TLS), or unset it for one rate per host"
        )
    return found


def _sources_problem() -> str | None:
    unknown = [s for s in sources() if s not in SOURCES]
    if not unknown and sources():
        return None
    return (
        f"PAYOUT_SOURCES={_env('PAYOUT_SOURCES')!r} names no source or an unknown one "
        f"({', '.join(unknown) or 'empty'}): set it to a comma list of {', '.join(SOURCES)}, or "
        "unset it for both"
    )


def store_problems() -> list[str]:
    """CLICKHOUSE_DSN is well formed (a server's reachability is a ``REACH`` check)."""
    dsn = clickhouse_dsn()
    shown = redact(dsn)
    fix = "set CLICKHOUSE_DSN to chdb:///abs/path (embedded) or http(s)://user:pass@host:port/db"
    try:
        parts = urlsplit(dsn)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        return [f"CLICKHOUSE_DSN={shown!r} is malformed ({exc}): {fix}"]
    if parts.scheme not in {"chdb", "http", "https"}:
        return [f"CLICKHOUSE_DSN={shown!r} has an unknown scheme {parts.scheme!r}: {fix}"]
    if parts.scheme == "chdb" and (parts.netloc or not parts.path.startswith("/")):
        return [
            f"CLICKHOUSE_DSN={shown!r} needs an absolute path after chdb:// (three slashes): {fix}"
        ]
    if parts.scheme != "chdb" and not parts.hostname:
        return [f"CLICKHOUSE_DSN={shown!r} names no host: {fix}"]
    return _cluster_problems(dsn)


def _cluster_problems(dsn: str) -> list[str]:
    problem = cluster_problem(dsn, clickhouse_cluster())
    return [problem] if problem else []


def endpoint() -> str:
    return _env("GOLDSKY_ENDPOINT") or DEFAULT_GOLDSKY_ENDPOINT


def run_problems() -> list[str]:
    """The endpoint's form, the dialect, the headers, the check threshold, the ids file's path."""
    problems: list[str] = []
    url = endpoint()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
        well_formed = parts.scheme in {"http", "https"} and bool(parts.hostname)
    except ValueError:
        well_formed = False
    if not well_formed:
        problems.append(
            f"GOLDSKY_ENDPOINT={redact(url)!r} is not an http(s) URL: set it to the "
            "subgraph's GraphQL URL (https://…/subgraphs/<name>/<version>/gn), or unset it"
        )
    dialect = _env("GOLDSKY_DIALECT")
    if dialect is not None and dialect not in {"pnl", "legacy"}:
        problems.append(
            f"GOLDSKY_DIALECT={dialect!r} is unknown: set it to pnl or legacy, or unset it (pnl)"
        )
    headers = _env("GOLDSKY_HEADERS")
    if headers is not None:
        try:
            parsed = json.loads(headers)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            problems.append(
                "GOLDSKY_HEADERS is not a JSON object (value not shown): set it to e.g. "
                '\'{"x-api-key": "…"}\', or unset it'
            )
    share = _number_problem("PAYOUT_MAX_REJECTED_SHARE", 0, maximum=1)
    incremental = _env("PAYOUT_INCREMENTAL")
    if incremental is not None and incremental not in {"0", "1"}:
        problems.append(
            f"PAYOUT_INCREMENTAL={incremental!r} is neither 0 nor 1: set it to 0 to re-ask every "
            "unresolved id, or unset it"
        )
    ids = _env("PAYOUT_IDS_FILE")
    if ids is not None and not Path(ids).expanduser().is_file():
        problems.append(
            f"PAYOUT_IDS_FILE={ids!r} is not a file: set it to a text file with one condition id "
            "per line, or unset it to use sql/condition_universe.sql"
        )
    return [p for p in [*problems, share] if p]


def ids_file_problem(path_text: str) -> str | None:
    """An ids file that would give a backfill of nothing: empty, blank lines only, or binary.
    Reads until the first non-blank byte (and the first 64 KiB to tell text from binary), so a
    large file costs no more than a small one."""
    path = Path(path_text).expanduser()
    fix = "point PAYOUT_IDS_FILE at a text file with one condition id per line, or unset it"
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
            if b"\0" in head or _not_utf8(head):
                return f"PAYOUT_IDS_FILE={path_text!r} is binary, not text ({path}): {fix}"
            chunk = head
            while chunk:
                if chunk.strip():
                    return None
                chunk = handle.read(1 << 20)
    except OSError as exc:
        return f"PAYOUT_IDS_FILE={path_text!r} cannot be read ({exc.strerror or exc}): {fix}"
    what = "empty" if path.stat().st_size == 0 else "blank lines only"
    return f"PAYOUT_IDS_FILE={path_text!r} holds no ids ({what}: {path}): {fix}"


def _not_utf8(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(head) - 4  # a character cut at the sniff's end is still text
    return False


def _endpoint_unreachable() -> str | None:
    """One small GraphQL request (``_meta``'s block number), bounded: a host that does not
    resolve, refuses, or does not answer, or a URL where no subgraph lives (HTTP 404)."""
    import httpx

    from payout_assets.sources.goldsky.client import request_headers

    url = endpoint()
    extra = json.loads(_env("GOLDSKY_HEADERS") or "{}")
    headers = request_headers(_env("GOLDSKY_API_KEY"), {str(k): str(v) for k, v in extra.items()})
    try:
        answer = httpx.post(
            url,
            content=json.dumps({"query": "{ _meta { block { number } } }"}),
            headers=headers,
            timeout=PROBE_TIMEOUT_S,
        )
    except httpx.HTTPError as exc:
        reason = _reason(exc)
        return (
            f"GOLDSKY_ENDPOINT={redact(url)!r} is unreachable ({reason}): check the URL and "
            "that the subgraph is up and reachable from this host"
        )
    if answer.status_code == 404:
        return (
            f"GOLDSKY_ENDPOINT={redact(url)!r} answers HTTP 404 (no subgraph there): set it "
            "to the subgraph's GraphQL URL (…/subgraphs/<name>/<version>/gn)"
        )
    return None


def _reason(exc: Exception) -> str:
    """The cause of a failed connection in a few words, without the URL (it may hold a secret)."""
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {PROBE_TIMEOUT_S:g}s"
    cause = exc.__cause__ or exc.__context__ or exc
    text = str(getattr(cause, "strerror", None) or cause).strip() or type(exc).__name__
    return text.splitlines()[0][:120]


def _server_unreachable() -> str | None:
    """A ClickHouse server DSN: its ``/ping`` answers (an embedded store needs no probe)."""
    dsn = clickhouse_dsn()
    parts = urlsplit(dsn)
    if parts.scheme not in {"http", "https"}:
        return None
    import httpx

    port = parts.port or (8443 if parts.scheme == "https" else 8123)
    try:
        httpx.get(f"{parts.scheme}://{parts.hostname}:{port}/ping", timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return (
            f"CLICKHOUSE_DSN={redact(dsn)!r}: the server does not answer ({_reason(exc)}): "
            "check the host and port, and that ClickHouse is up"
        )
    return None


def reach_problems() -> list[str]:
    """The subgraph (when it is a source) and a ClickHouse server answer; the ids file reads.
    The chain provider's reachability is the scan's own first call, which names the source."""
    problems = [
        _endpoint_unreachable() if source_enabled("goldsky") else None,
        _server_unreachable(),
    ]
    if ids := _env("PAYOUT_IDS_FILE"):
        problems.append(ids_file_problem(ids))
    return [p for p in problems if p]


_CHECKS: dict[Scope, Callable[[], list[str]]] = {
    Scope.LOAD: load_problems,
    Scope.STORE: store_problems,
    Scope.RUN: run_problems,
    Scope.REACH: reach_problems,
}


def problems(scopes: frozenset[Scope]) -> list[str]:
    """One line per problem in the given scopes; reachability is probed only when every value is
    well formed (a malformed one is the reason, and the probe would only repeat it)."""
    found = [
        p
        for scope in Scope
        if scope in scopes and scope not in {Scope.REACH, Scope.SERVER}
        for p in _CHECKS[scope]()
    ]
    if not found and Scope.REACH in scopes:
        found = reach_problems()
    elif not found and Scope.SERVER in scopes:
        found = [p for p in [_server_unreachable()] if p]
    return found


def command_problems(command: str) -> list[str]:
    """The problems that stop ``payout-backfill <command>``; none for a command that reads no
    settings of its own (``demo`` and ``simulate`` set theirs)."""
    scopes = COMMAND_SCOPES.get(command)
    return problems(scopes) if scopes else []
