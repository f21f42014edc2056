"""The subgraph through the real client: it answers, its head, and which dialect it serves."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from payout_assets.preflight.result import CheckResult, failed, passed, warned
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
from payout_assets.sources.tls import tls_context
from payout_assets.warehouse import tables

QUERIES_DIR = Path(__file__).resolve().parents[1] / "sources" / "goldsky" / "queries"

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


#: The preflight's own bounds: an unreachable endpoint must fail in seconds, not after the
#: backfill's retry budget (GOLDSKY_MAX_RETRY_S defaults to 5 minutes).
HTTP_TIMEOUT_S = 10.0
HTTP_ATTEMPTS = 2

_quiet = logging.getLogger("payout_assets.preflight.client")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False  # the client's retry warnings would print outside the table


def _endpoint(settings: ClientSettings) -> str:
    return redact(settings.endpoint)


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
        verify=tls_context(),
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
