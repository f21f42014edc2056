"""Local Goldsky / graph-node simulator: an HTTP GraphQL server on 127.0.0.1.

Why a real server: the backfill's hardest behaviour lives in the transport (retries,
rate limits, pinned blocks, paging limits), so the demo, the tests and the benchmark
need something that speaks HTTP and GraphQL the way Goldsky's graph-node does, without
network access. Queries are parsed, validated and executed by graphql-core against the
same SDL files the client validates with (``payout_assets/sources/goldsky/schemas``); resolvers
apply graph-node's rules (``first`` default 100 / max 1000, ``skip`` cap, default id
order, ``where`` filters, time travel and its beyond-head error, ``_meta``), and errors
use graph-node's wording and status codes (200 with ``errors``; 400 only for malformed
requests).

Control: the Python API (:class:`Simulator`, :func:`run_simulator`) for in-process use,
and ``/_admin/*`` HTTP endpoints on the same port for a simulator in another process.
Admin endpoints are not subject to the API key and are not recorded as traffic:

- ``GET /_admin/stats`` -> traffic statistics + head/settings (see ``TrafficLog.stats``)
- ``GET /_admin/requests?limit=N`` -> ``{"requests": [record, ...]}`` (oldest first)
- ``GET|POST|DELETE /_admin/faults`` -> list / add (one rule object or a list; see
  ``FaultRule.from_json``) / clear; answers ``{"rules": [...]}``
- ``GET|POST|DELETE /_admin/overrides`` -> POST a list (or ``{"overrides": [...]}``) of
  ``{"id", "numerators", "denominator", "payouts"?, "resolution_timestamp"?,
  "position_ids"?, "from_block"?, "present"?}``; omitted ``payouts`` /
  ``resolution_timestamp`` are derived
- ``GET|POST /_admin/head`` -> ``{"head_block"?: N, "advance_per_request"?: M}``
- ``POST /_admin/rate_limit`` -> ``{"requests": N | null, "window_s": S}``
- ``POST /_admin/latency`` -> ``{"latency_ms": M, "jitter_ms": J}``
- ``POST /_admin/reset`` -> clears the traffic log and the limiter window
- ``GET /_admin/config`` -> the configuration (without the API key) and the URL

Malformed admin input gets HTTP 400 ``{"error": ...}``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import random
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import cache, lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, Literal, TextIO
from urllib.parse import parse_qs

import graphql
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    is_non_null_type,
)
from graphql.execution.collect_fields import collect_sub_fields
from graphql.utilities import value_from_ast_untyped

from .faults import (
    ALLOWANCE_MESSAGE,
    INDEXING_ERROR_MESSAGE,
    OVERLOADED_MESSAGE,
    PRE_EXECUTION_KINDS,
    TIMEOUT_MESSAGE,
    FaultKind,
    FaultPlan,
    FaultRule,
    RateLimiter,
    RequestInfo,
    TrafficLog,
)
from .universe import (
    LEGACY_FIELDS,
    PNL_FIELDS,
    ConditionState,
    FieldGetter,
    Universe,
    block_hash,
    block_number_from_hash,
    block_timestamp,
)

__all__ = [
    "DEPLOYMENT_ID",
    "SCHEMA_DIR",
    "Dialect",
    "Simulator",
    "SimulatorConfig",
    "load_schema",
    "run_simulator",
    "serve_forever",
]

_log = logging.getLogger(__name__)

Dialect = Literal["pnl", "legacy"]

#: Where the SDL of both dialects lives (shared with the client).
SCHEMA_DIR = (
    Path(__file__).resolve().parents[2] / "payout_assets" / "sources" / "goldsky" / "schemas"
)
#: Deployment id reported by ``_meta`` and in graph-node's block errors.
DEPLOYMENT_ID = "QmSimulated"
_PROJECT_ID = "project_simulated"
_SUBGRAPHS: dict[str, tuple[str, str]] = {
    "pnl": ("pnl-subgraph", "0.0.14"),
    "legacy": ("positions-subgraph", "0.0.7"),
}
_MAX_BODY = 32 * 1024 * 1024
_MODE_NOTES = {
    "drop": "connection dropped without a response",
    "truncate_body": "body cut in half",
    "truncate_connection": "connection closed mid-body",
}
_HTML_PAGES = {
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
    504: "504 Gateway Time-out",
}


# --------------------------------------------------------------------------- config
@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Everything needed to start a simulator; all fields have demo-friendly defaults.

    ``rate_limit`` is ``(requests, window_s)`` for the sliding-window limiter (Goldsky's
    Polymarket endpoints allow about 100 req/s per IP), ``advance_per_request`` moves the
    head by that many blocks on every GraphQL request, ``latency_ms ± jitter_ms`` is slept
    in the handler thread before answering.
    """

    size: int = 10_000
    seed: int = 0
    resolved_share: float = 0.75
    split_share: float = 0.05
    head_block: int = 50_000_000
    advance_per_request: int = 0
    dialect: Dialect = "pnl"
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_limit: tuple[int, float] | None = None
    api_key: str | None = None
    skip_cap: int = 5000
    max_first: int = 1000
    port: int = 0
    host: str = "127.0.0.1"
    fault_seed: int = 0
    record_limit: int = 10_000
    deployment: str = DEPLOYMENT_ID  # what ``_meta.deployment`` reports


# --------------------------------------------------------------------------- GraphQL
@dataclass(slots=True)
class _ExecContext:
    """Per-request execution state handed to the resolvers."""

    universe: Universe
    dialect: str
    head: int
    max_first: int
    skip_cap: int
    meta_indexing_errors: bool = False
    deployment: str = DEPLOYMENT_ID
    returned: list[str] = field(default_factory=list)


def _beyond_head(arg: str, head: int, number: int) -> str:
    return (
        f"Failed to decode `{arg}` value: `subgraph {DEPLOYMENT_ID} has only indexed up to "
        f"block number {head} and data for block number {number} is therefore not yet "
        "available`"
    )


def _resolve_block(ctx: _ExecContext, block: Mapping[str, Any] | None) -> int:
    """graph-node's `Block_height` handling: hash, number or number_gte, else the head."""
    if not block:
        return ctx.head
    if block.get("hash") is not None:
        number = block_number_from_hash(str(block["hash"]))
        if number is None or number > ctx.head:
            raise GraphQLError(
                "Failed to decode `block.hash` value: `no block with that hash found`"
            )
        return number
    if block.get("number") is not None:
        number = int(block["number"])
        if number < 0:
            raise GraphQLError(
                f"Failed to decode `block.number` value: `block number {number} is negative`"
            )
        if number > ctx.head:
            raise GraphQLError(_beyond_head("block.number", ctx.head, number))
        return number
    if block.get("number_gte") is not None:
        number = int(block["number_gte"])
        if number > ctx.head:
            raise GraphQLError(_beyond_head("block.number_gte", ctx.head, number))
    return ctx.head


_GETTERS: dict[str, Mapping[str, FieldGetter]] = {"pnl": PNL_FIELDS, "legacy": LEGACY_FIELDS}
_Plan = list[tuple[str, str, FieldGetter | None, bool]]


def _projection(info: GraphQLResolveInfo, ctx: _ExecContext) -> _Plan:
    """Response keys of the `Condition` selection: (key, field, getter, non-null).

    graphql-core collects the sub-fields (aliases, fragments, @include/@skip) against the
    public schema; the rows are then built directly, because graphql-core's generic
    per-field completion costs ~50 us per row and the benchmark asks for 1,000 rows per
    request on a thread pool that shares the GIL with the client under test.
    """
    schema = load_schema(ctx.dialect)
    condition_type = schema.type_map["Condition"]
    assert isinstance(condition_type, GraphQLObjectType)
    sub_fields = collect_sub_fields(
        schema, info.fragments, info.variable_values, condition_type, list(info.field_nodes)
    )
    getters = _GETTERS[ctx.dialect]
    plan: _Plan = []
    for key, nodes in sub_fields.items():
        name = nodes[0].name.value
        if name == "__typename":
            plan.append((key, name, None, True))
        else:
            non_null = is_non_null_type(condition_type.fields[name].type)
            plan.append((key, name, getters[name], non_null))
    return plan


def _project(state: ConditionState, plan: _Plan) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, name, get, non_null in plan:
        if get is None:
            row[key] = "Condition"
            continue
        value = get(state)
        if value is None and non_null:
            raise GraphQLError(f"Null value resolved for non-null field `{name}`")
        row[key] = value
    return row


_Predicate = Callable[[str, ConditionState], bool]


def _check_filter_shape(where: Mapping[str, Any]) -> None:
    """graph-node refuses `or` next to column filters at the same level."""
    if "or" in where:
        columns = [k for k in where if k not in ("or", "and", "_change_block")]
        if columns:
            found = ", ".join(f"'{c}'" for c in columns)
            raise GraphQLError(
                "Cannot mix column filters with 'or' operator at the same level. "
                f"Found column filter(s) {found} alongside 'or' operator."
            )


def _compile_filter(where: Mapping[str, Any]) -> _Predicate:
    """Turn a coerced `Condition_filter` into a predicate over (id, state)."""
    _check_filter_shape(where)
    checks: list[_Predicate] = []
    for key, value in where.items():
        if key in ("id_in", "id_not_in"):
            if value is None:
                raise GraphQLError(f"Non-list value passed to `{key}` filter")
            members = frozenset(value)
            if key == "id_in":
                checks.append(lambda c, s, m=members: c in m)
            else:
                checks.append(lambda c, s, m=members: c not in m)
        elif key == "id_not":
            checks.append(lambda c, s, v=value: v is None or c != v)
        elif key in ("id", "id_gt", "id_gte", "id_lt", "id_lte"):
            if value is None:
                checks.append(lambda c, s: False)
            elif key == "id":
                checks.append(lambda c, s, v=value: c == v)
            elif key == "id_gt":
                checks.append(lambda c, s, v=value: c > v)
            elif key == "id_gte":
                checks.append(lambda c, s, v=value: c >= v)
            elif key == "id_lt":
                checks.append(lambda c, s, v=value: c < v)
            else:
                checks.append(lambda c, s, v=value: c <= v)
        elif key == "_change_block":
            if value is not None:
                gte = int(value["number_gte"])
                checks.append(lambda c, s, n=gte: s.last_change_block >= n)
        elif key in ("and", "or"):
            subs = [_compile_filter(sub) for sub in (value or []) if sub is not None]
            if key == "and":
                checks.append(lambda c, s, p=subs: all(f(c, s) for f in p))
            else:
                checks.append(lambda c, s, p=subs: any(f(c, s) for f in p))
        else:  # pragma: no cover - validation rejects fields the SDL does not declare
            raise GraphQLError(f"Filter not supported by value `{key}`")
    return lambda c, s: all(check(c, s) for check in checks)


@dataclass(slots=True)
class _Narrowing:
    """Candidate set implied by a filter: explicit ids and/or id bounds (a superset)."""

    explicit: frozenset[str] | None = None
    gt: str | None = None
    gte: str | None = None
    lt: str | None = None
    lte: str | None = None

    def merge(self, other: _Narrowing) -> None:
        if other.explicit is not None:
            self.explicit = (
                other.explicit if self.explicit is None else self.explicit & other.explicit
            )
        self.gt = _max_opt(self.gt, other.gt)
        self.gte = _max_opt(self.gte, other.gte)
        self.lt = _min_opt(self.lt, other.lt)
        self.lte = _min_opt(self.lte, other.lte)

    def admits(self, cid: str) -> bool:
        return (
            (self.gt is None or cid > self.gt)
            and (self.gte is None or cid >= self.gte)
            and (self.lt is None or cid < self.lt)
            and (self.lte is None or cid <= self.lte)
        )


def _max_opt(a: str | None, b: str | None) -> str | None:
    return b if a is None else a if b is None else max(a, b)


def _min_opt(a: str | None, b: str | None) -> str | None:
    return b if a is None else a if b is None else min(a, b)


def _narrow(where: Mapping[str, Any]) -> _Narrowing:
    """Derive the candidate range so id_in / id_gt queries never scan the universe."""
    n = _Narrowing()
    for key, value in where.items():
        if value is None:
            if key in ("id", "id_gt", "id_gte", "id_lt", "id_lte"):
                n.merge(_Narrowing(explicit=frozenset()))  # compares with null match nothing
            continue
        if key == "id":
            n.merge(_Narrowing(explicit=frozenset([value])))
        elif key == "id_in":
            n.merge(_Narrowing(explicit=frozenset(value)))
        elif key in ("id_gt", "id_gte", "id_lt", "id_lte"):
            n.merge(_Narrowing(**{key[3:]: value}))
        elif key == "and":
            for sub in value:
                if sub is not None:
                    n.merge(_narrow(sub))
        elif key == "or":
            subs = [_narrow(sub) for sub in value if sub is not None]
            if subs and all(s.explicit is not None for s in subs):
                union: set[str] = set()
                for s in subs:
                    union.update(c for c in s.explicit or () if s.admits(c))
                n.merge(_Narrowing(explicit=frozenset(union)))
    return n


def _resolve_conditions(_root: object, info: GraphQLResolveInfo, **args: Any) -> list[Any]:
    ctx: _ExecContext = info.context
    first = args.get("first")
    first = 100 if first is None else first
    if not 0 < first <= ctx.max_first:
        raise GraphQLError(
            f"The `first` argument must be between 0 and {ctx.max_first}, but is {first}"
        )
    skip = args.get("skip")
    skip = 0 if skip is None else skip
    if not 0 <= skip <= ctx.skip_cap:
        raise GraphQLError(
            f"The `skip` argument must be between 0 and {ctx.skip_cap}, but is {skip}"
        )
    block = _resolve_block(ctx, args.get("block"))
    order_by = args.get("orderBy")
    if order_by not in (None, "id"):
        raise GraphQLError(
            f"Ordering by `{order_by}` is not supported by the simulator (only `id`)"
        )
    # graph-node ignores orderDirection without orderBy: the default order is id ascending.
    descending = order_by is not None and args.get("orderDirection") == "desc"
    where: Mapping[str, Any] = args.get("where") or {}
    predicate = _compile_filter(where)
    narrowing = _narrow(where)

    universe = ctx.universe
    candidates: Iterator[str]
    if narrowing.explicit is not None:
        candidates = iter(
            sorted((c for c in narrowing.explicit if narrowing.admits(c)), reverse=descending)
        )
    else:
        candidates = universe.iter_ids(
            gt=narrowing.gt,
            gte=narrowing.gte,
            lt=narrowing.lt,
            lte=narrowing.lte,
            descending=descending,
        )
    plan = _projection(info, ctx)
    rows: list[dict[str, Any]] = []
    to_skip = skip
    for cid in candidates:
        state = universe.state(cid, block)
        if state is None or not predicate(cid, state):
            continue
        if to_skip:
            to_skip -= 1
            continue
        rows.append(_project(state, plan))
        ctx.returned.append(cid)
        if len(rows) >= first:
            break
    return rows


def _resolve_condition(_root: object, info: GraphQLResolveInfo, **args: Any) -> Any:
    ctx: _ExecContext = info.context
    block = _resolve_block(ctx, args.get("block"))
    state = ctx.universe.state(args["id"], block)
    if state is None:
        return None
    row = _project(state, _projection(info, ctx))
    ctx.returned.append(state.id)
    return row


def _resolve_meta(_root: object, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
    ctx: _ExecContext = info.context
    number = _resolve_block(ctx, args.get("block"))
    return {
        "block": {
            "number": number,
            "hash": block_hash(number),
            "timestamp": block_timestamp(number),
            "parentHash": block_hash(number - 1) if number > 0 else None,
        },
        "deployment": ctx.deployment,
        "hasIndexingErrors": ctx.meta_indexing_errors,
    }


@cache
def load_schema(dialect: str) -> GraphQLSchema:
    """The public schema of a dialect, exactly as written in its SDL file."""
    if dialect not in _SUBGRAPHS:
        raise ValueError(f"unknown dialect {dialect!r}; expected 'pnl' or 'legacy'")
    return graphql.build_schema((SCHEMA_DIR / f"{dialect}.graphql").read_text())


#: Execution-only leaf types: the entity resolvers return already-projected rows.
_ROWS = GraphQLScalarType("_ConditionRows", description="Projected Condition rows.")
_ROW = GraphQLScalarType("_ConditionRow", description="One projected Condition row.")


@cache
def _execution_schema(dialect: str) -> GraphQLSchema:
    """The schema queries execute against (validation always uses :func:`load_schema`).

    Same root fields, arguments and nullability as the public schema, so graphql-core
    still coerces arguments and variables and propagates errors through non-null root
    fields exactly as for the public schema; only the entity fields are leaves whose
    values the resolvers build (see :func:`_projection`).
    """
    query = load_schema(dialect).query_type
    assert query is not None

    def root(name: str, type_: Any, resolve: Callable[..., Any]) -> GraphQLField:
        public = query.fields[name]
        return GraphQLField(type_, args=public.args, resolve=resolve)

    fields = dict(query.fields)
    fields["conditions"] = root("conditions", GraphQLNonNull(_ROWS), _resolve_conditions)
    fields["condition"] = root("condition", _ROW, _resolve_condition)
    fields["_meta"] = root("_meta", query.fields["_meta"].type, _resolve_meta)
    return GraphQLSchema(query=GraphQLObjectType("Query", fields))


_NO_FIELD_PREFIX = "Cannot query field '"
_NULL_PREFIX = "Cannot return null for non-nullable field "


def _graph_node_message(message: str) -> str:
    """Map graphql-core wording to graph-node's where graph-node's is known."""
    if message.startswith(_NO_FIELD_PREFIX):
        # "Cannot query field 'payouts' on type 'Condition'. Did you mean ...?"
        rest = message[len(_NO_FIELD_PREFIX) :]
        name, _, rest = rest.partition("' on type '")
        type_name = rest.partition("'")[0]
        if name and type_name:
            return f"Type `{type_name}` has no field `{name}`"
    if message.startswith(_NULL_PREFIX):
        field_name = message[len(_NULL_PREFIX) :].rstrip(".").rpartition(".")[2]
        return f"Null value resolved for non-null field `{field_name}`"
    return message


def _format_error(error: GraphQLError, *, locations: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"message": _graph_node_message(error.message)}
    if locations and error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    return out


@dataclass(frozen=True, slots=True)
class _Prepared:
    document: DocumentNode | None
    errors: tuple[dict[str, Any], ...]


_CACHEABLE_QUERY_CHARS = 16_384


def _prepare(dialect: str, query: str) -> _Prepared:
    """Parse and validate, once per distinct query text when the text is small.

    Clients that pass ids as variables reuse one text, which the cache serves. Texts
    with inlined id lists are unique and large (an AST keeps its whole token list), so
    caching them would only hold memory.
    """
    if len(query) <= _CACHEABLE_QUERY_CHARS:
        return _prepare_cached(dialect, query)
    return _prepare_uncached(dialect, query)


def _prepare_uncached(dialect: str, query: str) -> _Prepared:
    try:
        document = graphql.parse(query)
    except GraphQLError as error:
        return _Prepared(None, (_format_error(error, locations=True),))
    errors = graphql.validate(load_schema(dialect), document)
    return _Prepared(document, tuple(_format_error(e, locations=True) for e in errors))


_prepare_cached = lru_cache(maxsize=256)(_prepare_uncached)


def _pick_operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (
            name is None or (definition.name is not None and definition.name.value == name)
        ):
            return definition
    return None


def _collect_ids(where: Any, out: list[str]) -> None:
    if not isinstance(where, dict):
        return
    for key, value in where.items():
        if key == "id_in" and isinstance(value, list):
            out.extend(v for v in value if isinstance(v, str))
        elif key == "id" and isinstance(value, str):
            out.append(value)
        elif key in ("and", "or") and isinstance(value, list):
            for sub in value:
                _collect_ids(sub, out)


def _extract_info(
    document: DocumentNode | None,
    variables: Mapping[str, Any],
    operation_name: str | None,
    base: RequestInfo,
) -> tuple[RequestInfo, int]:
    """What the request asks for (for fault predicates and the traffic log).

    Works on the raw AST with variables substituted, before validation, so even an
    invalid request is logged with as much detail as can be recovered.
    Returns the info and the number of collection (`conditions`) fields.
    """
    op = None if document is None else _pick_operation(document, operation_name)
    if op is None:
        return base, 0
    values = dict(variables)
    for definition in op.variable_definitions or ():
        name = definition.variable.name.value
        if name not in values and definition.default_value is not None:
            values[name] = value_from_ast_untyped(definition.default_value)
    fields: list[str] = []
    ids: list[str] = []
    first: int | None = None
    skip: int | None = None
    block: int | None = None
    collections = 0
    for selection in op.selection_set.selections:
        if not isinstance(selection, FieldNode):
            continue
        name = selection.name.value
        fields.append(name)
        args = {a.name.value: value_from_ast_untyped(a.value, values) for a in selection.arguments}
        if name == "conditions":
            collections += 1
            f = args.get("first")
            if isinstance(f, int) and not isinstance(f, bool):
                first = f if first is None else max(first, f)
            s = args.get("skip")
            if isinstance(s, int) and not isinstance(s, bool):
                skip = s if skip is None else max(skip, s)
            _collect_ids(args.get("where"), ids)
        elif name == "condition" and isinstance(args.get("id"), str):
            ids.append(args["id"])
        b = args.get("block")
        if block is None and isinstance(b, dict):
            n = b.get("number", b.get("number_gte"))
            if isinstance(n, int) and not isinstance(n, bool):
                block = n
    info = replace(
        base,
        operation=op.name.value if op.name is not None else None,
        fields=tuple(fields),
        first=first,
        skip=skip,
        ids=tuple(ids),
        block=block,
    )
    return info, collections


# --------------------------------------------------------------------------- HTTP
class _BadRequest(Exception):
    """A malformed HTTP request (answered with 400)."""


@dataclass(slots=True)
class _Answer:
    """What to send back for one GraphQL request, and what to log about it."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    mode: Literal["normal", "drop", "truncate_body", "truncate_connection"] = "normal"
    delay_s: float = 0.0
    reset: bool = False
    rows: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _errors_answer(*messages: str, status: int = 200) -> _Answer:
    return _Answer(
        status=status,
        body=_json_bytes({"errors": [{"message": m} for m in messages]}),
        errors=list(messages),
    )


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """Read the request body (Content-Length or chunked) so keep-alive stays in sync."""
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks: list[bytes] = []
        total = 0
        while True:
            line = handler.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _BadRequest("invalid chunked encoding") from None
            if size == 0:
                while handler.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > _MAX_BODY:
                raise _BadRequest("request body too large")
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline(1024)
    length = handler.headers.get("Content-Length")
    if length is None:
        return b""
    try:
        n = int(length)
    except ValueError:
        raise _BadRequest("invalid Content-Length") from None
    if n < 0 or n > _MAX_BODY:
        raise _BadRequest("request body too large")
    return handler.rfile.read(n)


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that remembers open connections so stop() can close them."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], app: Simulator) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "goldsky-simulator/1.0"
    sys_version = ""
    timeout = 120
    # Headers and body are separate writes; without TCP_NODELAY, Nagle plus delayed ACKs
    # add ~40 ms to every small keep-alive answer.
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:
        self.server.app.dispatch(self)

    def do_GET(self) -> None:
        self.server.app.dispatch(self)

    def do_DELETE(self) -> None:
        self.server.app.dispatch(self)

    def do_PUT(self) -> None:
        self.server.app.dispatch(self)

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s " + format, self.address_string(), *args)


def _send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    *,
    content_type: str = "application/json",
    headers: list[tuple[str, str]] | None = None,
    announce: int | None = None,
    close: bool = False,
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body) if announce is None else announce))
    for name, value in headers or ():
        handler.send_header(name, value)
    if close:
        handler.send_header("Connection", "close")
        handler.close_connection = True
    handler.end_headers()
    handler.wfile.write(body)


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    ok = address is not None and address.version == 4 and address.is_loopback
    if not ok:
        raise ValueError(f"the simulator only binds IPv4 loopback addresses, not {host!r}")


# --------------------------------------------------------------------------- simulator
class Simulator:
    """A running (or startable) simulator: data, faults, traffic log and HTTP server."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        cfg = self.config
        _check_loopback(cfg.host)
        _execution_schema(cfg.dialect)
        self.dialect: Dialect = cfg.dialect
        self.universe = Universe(
            cfg.size,
            seed=cfg.seed,
            resolved_share=cfg.resolved_share,
            split_share=cfg.split_share,
            head_block=cfg.head_block,
        )
        self.faults = FaultPlan(seed=cfg.fault_seed)
        self.traffic = TrafficLog(self.universe.index_of, cfg.size, keep=cfg.record_limit)
        self.rate_limiter: RateLimiter | None = (
            RateLimiter(*cfg.rate_limit) if cfg.rate_limit is not None else None
        )
        self.advance_per_request = cfg.advance_per_request
        self.latency_ms = cfg.latency_ms
        self.jitter_ms = cfg.jitter_ms
        self._rng = random.Random(cfg.seed ^ 0x5EED)
        self._rng_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- lifecycle
    def start(self) -> Simulator:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        server = _Server((self.config.host, self.config.port), self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"goldsky-simulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open keep-alive connections and release the port."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------- addresses
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("simulator is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def url(self) -> str:
        """Goldsky-shaped endpoint URL, ending in ``/gn``."""
        name, version = _SUBGRAPHS[self.dialect]
        return f"{self.base_url}/api/public/{_PROJECT_ID}/subgraphs/{name}/{version}/gn"

    def admin_url(self, path: str) -> str:
        return f"{self.base_url}/_admin/{path.lstrip('/')}"

    # ------------------------------------------------------------- controls
    def set_head(self, block: int) -> None:
        self.universe.set_head(block)

    def set_rate_limit(self, requests: int | None, window_s: float = 1.0) -> None:
        self.rate_limiter = None if requests is None else RateLimiter(requests, window_s)

    def set_latency(self, latency_ms: float, jitter_ms: float = 0.0) -> None:
        if latency_ms < 0 or jitter_ms < 0:
            raise ValueError("latency and jitter must be >= 0")
        self.latency_ms, self.jitter_ms = latency_ms, jitter_ms

    def stats(self) -> dict[str, Any]:
        """Traffic statistics plus the simulator's current head and settings."""
        out = self.traffic.stats()
        limiter = self.rate_limiter
        out.update(
            head_block=self.universe.head,
            dialect=self.dialect,
            size=self.universe.size,
            fault_rules=len(self.faults.rules),
            rate_limit=None if limiter is None else [limiter.requests, limiter.window_s],
        )
        return out

    # ------------------------------------------------------------- dispatch
    def dispatch(self, handler: _Handler) -> None:
        path, _, query_string = handler.path.partition("?")
        method = handler.command
        if path.startswith("/_admin/"):
            self._handle_admin(handler, method, path, query_string)
        elif path == "/" or path.endswith("/gn"):
            if method == "POST":
                self._handle_graphql(handler, path)
            else:
                _read_body_quietly(handler)
                _send(
                    handler,
                    405,
                    _json_bytes({"errors": [{"message": "use POST for GraphQL queries"}]}),
                    headers=[("Allow", "POST")],
                )
        else:
            _read_body_quietly(handler)
            _send(handler, 404, _json_bytes({"errors": [{"message": f"no route {path}"}]}))

    # ------------------------------------------------------------- GraphQL
    def _handle_graphql(self, handler: _Handler, path: str) -> None:
        seq, arrived = self.traffic.begin()
        info = RequestInfo(path=path, authorization="Authorization" in handler.headers)
        fault: FaultRule | None = None
        rate_limited = False
        collections = 0
        try:
            try:
                body = _read_body(handler)
            except _BadRequest as exc:
                answer = _errors_answer(str(exc), status=400)
            else:
                answer, info, fault, rate_limited, collections = self._answer(handler, body, info)
        except Exception:  # a simulator bug must still be answered and logged
            _log.exception("simulator failed to answer a GraphQL request")
            answer = _errors_answer("internal simulator error", status=500)
        delay = answer.delay_s + self._latency_s()
        if delay > 0:
            time.sleep(delay)
        # Record before writing: a client that reads the stats right after receiving
        # its response must find its own request there. Recorded before it stops counting as
        # in flight, so "nothing in flight" means every arrived request is in the stats.
        try:
            record = self.traffic.record(
                seq=seq,
                arrived=arrived,
                info=info,
                status=None if answer.mode == "drop" else answer.status,
                fault=fault,
                rate_limited=rate_limited,
                rows=answer.rows,
                errors=answer.errors,
                collection_fields=collections,
                note=_MODE_NOTES.get(answer.mode),
            )
        finally:
            self.traffic.end()
        try:
            self._write(handler, answer)
        except OSError as exc:
            record.note = f"client connection lost: {type(exc).__name__}"
            handler.close_connection = True

    def _answer(
        self, handler: _Handler, body: bytes, info: RequestInfo
    ) -> tuple[_Answer, RequestInfo, FaultRule | None, bool, int]:
        """Decide the answer: auth, malformed request, rate limit, faults, execution."""
        cfg = self.config
        problem: str | None = None
        query = ""
        variables: dict[str, Any] = {}
        operation_name: str | None = None
        try:
            payload = json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError):
            payload = None
            problem = "request body is not valid JSON"
        if problem is None:
            if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
                problem = "the request must be a JSON object with a string `query`"
            elif not isinstance(payload.get("variables") or {}, dict):
                problem = "`variables` must be a JSON object"
            elif not isinstance(payload.get("operationName") or "", str):
                problem = "`operationName` must be a string"
            else:
                query = payload["query"]
                variables = payload.get("variables") or {}
                operation_name = payload.get("operationName") or None
                if not query.strip():
                    problem = "The query is empty"

        prepared = _prepare(cfg.dialect, query) if problem is None else None
        collections = 0
        if prepared is not None:
            info, collections = _extract_info(
                prepared.document, variables, operation_name, replace(info, query=query)
            )
        head = (
            self.universe.advance(self.advance_per_request)
            if self.advance_per_request
            else self.universe.head
        )

        if cfg.api_key is not None:
            expected = f"Bearer {cfg.api_key}"
            if handler.headers.get("Authorization") != expected:
                answer = _errors_answer("Unauthorized", status=401)
                answer.headers.append(("WWW-Authenticate", "Bearer"))
                return answer, info, None, False, collections
        if problem is not None or prepared is None:
            answer = _errors_answer(problem or "bad request", status=400)
            return answer, info, None, False, collections
        limiter = self.rate_limiter
        if limiter is not None and not limiter.allow():
            answer = _Answer(
                status=429,
                body=ALLOWANCE_MESSAGE.encode(),
                content_type="text/plain; charset=utf-8",
                errors=[ALLOWANCE_MESSAGE],
            )
            return answer, info, None, True, collections

        fault = self.faults.choose(info)
        if fault is not None and fault.kind in PRE_EXECUTION_KINDS:
            return self._pre_execution_fault(fault), info, fault, False, collections

        if prepared.errors:
            answer = _Answer(
                status=200,
                body=_json_bytes({"errors": [dict(e) for e in prepared.errors]}),
                errors=[e["message"] for e in prepared.errors],
            )
        else:
            answer = self._execute(prepared, variables, operation_name, head, fault, info)
        if fault is not None and fault.kind == FaultKind.SLOW:
            answer.delay_s += fault.delay_s
        if fault is not None and fault.kind == FaultKind.TRUNCATE:
            answer.mode = "truncate_body" if fault.mode == "body" else "truncate_connection"
        return answer, info, fault, False, collections

    def _pre_execution_fault(self, fault: FaultRule) -> _Answer:
        kind = fault.kind
        if kind == FaultKind.HTTP_429:
            answer = _Answer(
                status=429,
                body=b"Too Many Requests",
                content_type="text/plain; charset=utf-8",
                errors=["Too Many Requests"],
            )
            if fault.retry_after is not None:
                value = fault.retry_after
                shown = str(int(value)) if float(value).is_integer() else f"{value:g}"
                answer.headers.append(("Retry-After", shown))
            return answer
        if kind == FaultKind.ALLOWANCE:
            return _Answer(
                status=fault.status or 200,
                body=ALLOWANCE_MESSAGE.encode(),
                content_type="text/plain; charset=utf-8",
                errors=[ALLOWANCE_MESSAGE],
            )
        if kind == FaultKind.HTML_ERROR:
            status = fault.status or 502
            title = _HTML_PAGES.get(status, f"{status} Error")
            page = (
                f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
                f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
                "</body>\r\n</html>\r\n"
            )
            return _Answer(
                status=status,
                body=page.encode(),
                content_type="text/html",
                errors=[title],
            )
        if kind == FaultKind.INDEXING_ERROR:
            return _errors_answer(INDEXING_ERROR_MESSAGE)
        if kind == FaultKind.TIMEOUT:
            return _errors_answer(TIMEOUT_MESSAGE)
        if kind == FaultKind.OVERLOADED:
            return _errors_answer(OVERLOADED_MESSAGE)
        if kind == FaultKind.GRAPHQL_ERROR:
            return _errors_answer(fault.message or "Store error: simulated failure")
        if kind == FaultKind.DROP:
            return _Answer(status=0, mode="drop", reset=fault.reset)
        raise AssertionError(f"not a pre-execution fault: {kind}")  # pragma: no cover

    def _execute(
        self,
        prepared: _Prepared,
        variables: dict[str, Any],
        operation_name: str | None,
        head: int,
        fault: FaultRule | None,
        info: RequestInfo,
    ) -> _Answer:
        assert prepared.document is not None
        ctx = _ExecContext(
            universe=self.universe,
            dialect=self.dialect,
            head=head,
            max_first=self.config.max_first,
            skip_cap=self.config.skip_cap,
            meta_indexing_errors=fault is not None and fault.kind == FaultKind.META_INDEXING_ERRORS,
            deployment=self.config.deployment,
        )
        result = graphql.execute(
            _execution_schema(self.dialect),
            prepared.document,
            context_value=ctx,
            variable_values=variables,
            operation_name=operation_name,
        )
        assert not isinstance(result, Awaitable), "resolvers are synchronous"
        payload: dict[str, Any] = {}
        if result.data is not None:
            payload["data"] = result.data
        if result.errors:
            # graph-node stops at the first failing block constraint shared by several root
            # fields, so identical messages are reported once.
            formatted = [_format_error(e, locations=False) for e in result.errors]
            unique = {e["message"]: e for e in formatted}
            payload["errors"] = list(unique.values())
        rows = list(ctx.returned)
        if fault is not None:
            rows = self._apply_data_fault(fault, payload, rows, info)
        errors = [e["message"] for e in payload.get("errors", [])]
        return _Answer(status=200, body=_json_bytes(payload), rows=rows, errors=errors)

    def _apply_data_fault(
        self, fault: FaultRule, payload: dict[str, Any], rows: list[str], info: RequestInfo
    ) -> list[str]:
        """Corrupt an executed answer in place; returns the ids it now contains."""
        data = payload.get("data")
        lists: dict[str, list[Any]] = (
            {k: v for k, v in data.items() if isinstance(v, list)} if isinstance(data, dict) else {}
        )
        if fault.kind == FaultKind.PARTIAL:
            kept: list[str] = []
            for key, items in lists.items():
                data[key] = items[: int(len(items) * fault.keep)]
                kept.extend(_row_id(r) for r in data[key])
            payload.setdefault("errors", []).append(
                {"message": fault.message or INDEXING_ERROR_MESSAGE}
            )
            return kept
        for items in lists.values():
            if fault.kind == FaultKind.DUPLICATE_ROWS and items:
                items.append(dict(items[0]))
                rows.append(_row_id(items[0]))
            elif fault.kind == FaultKind.UNREQUESTED_ROWS:
                extra = self._unrequested_row(items, info)
                if extra is not None:
                    items.append(extra)
                    rows.append(_row_id(extra))
        return rows

    def _unrequested_row(self, items: list[Any], info: RequestInfo) -> dict[str, Any] | None:
        """A plausible row for a known id that the request did not ask for."""
        universe = self.universe
        if universe.size == 0:
            return None
        taken = set(info.ids) | {_row_id(r) for r in items}
        start = (len(taken) * 7919 + universe.size // 2) % universe.size
        for step in range(min(universe.size, 256)):
            cid = universe.condition_id((start + step * 104_729) % universe.size)
            state = universe.state(cid)
            if cid in taken or state is None:
                continue
            full = state.to_pnl() if self.dialect == "pnl" else state.to_legacy()
            if not items:
                return full
            template = items[0]
            old_id = _row_id(template)
            return {key: (cid if value == old_id else value) for key, value in template.items()}
        return None

    def _write(self, handler: _Handler, answer: _Answer) -> None:
        """Write the answer, or misbehave as the answer's mode says."""
        if answer.mode == "drop":
            handler.close_connection = True
            if answer.reset:
                with contextlib.suppress(OSError):
                    handler.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
            return
        body = answer.body
        truncated = answer.mode in ("truncate_body", "truncate_connection")
        _send(
            handler,
            answer.status,
            body[: len(body) // 2] if truncated else body,
            content_type=answer.content_type,
            headers=answer.headers,
            announce=len(body) if answer.mode == "truncate_connection" else None,
            close=answer.mode == "truncate_connection" or answer.status in (400, 500),
        )

    def _latency_s(self) -> float:
        mean, jitter = self.latency_ms, self.jitter_ms
        if mean <= 0 and jitter <= 0:
            return 0.0
        with self._rng_lock:
            offset = self._rng.uniform(-jitter, jitter) if jitter > 0 else 0.0
        return max(0.0, mean + offset) / 1000.0

    # ------------------------------------------------------------- admin
    def _handle_admin(self, handler: _Handler, method: str, path: str, query_string: str) -> None:
        try:
            body = _read_body(handler)
            status, obj = self._admin(method, path.rstrip("/"), query_string, body)
        except _BadRequest as exc:
            status, obj = 400, {"error": str(exc)}
        except (ValueError, TypeError, KeyError) as exc:
            status, obj = 400, {"error": f"{type(exc).__name__}: {exc}"}
        _send(handler, status, _json_bytes(obj))

    def _admin(self, method: str, path: str, query_string: str, body: bytes) -> tuple[int, Any]:
        route = path[len("/_admin/") :]
        data: Any = json.loads(body) if body.strip() else None
        if (method, route) == ("GET", "stats"):
            return 200, self.stats()
        if (method, route) == ("GET", "requests"):
            params = parse_qs(query_string)
            limit = int(params.get("limit", ["100"])[0])
            return 200, {"requests": [r.to_json() for r in self.traffic.records(limit)]}
        if route == "faults":
            if method == "GET":
                return 200, {"rules": [r.describe() for r in self.faults.rules]}
            if method == "POST":
                items = data if isinstance(data, list) else [data]
                rules = [FaultRule.from_json(item) for item in items]
                return 200, {"rules": [self.faults.add_rule(r).describe() for r in rules]}
            if method == "DELETE":
                self.faults.clear()
                return 200, {"rules": []}
        if route == "overrides":
            if method == "POST":
                items = data.get("overrides") if isinstance(data, dict) else data
                if not isinstance(items, list):
                    raise ValueError("expected a list of overrides")
                for item in items:
                    self._apply_override_json(item)
                return 200, {"overrides": len(self.universe.overrides)}
            if method == "DELETE":
                self.universe.clear_overrides()
                return 200, {"overrides": 0}
            if method == "GET":
                return 200, {
                    "overrides": [_override_json(o) for o in self.universe.overrides.values()]
                }
        if route == "head":
            if method == "POST":
                if not isinstance(data, dict):
                    raise ValueError("expected an object")
                if data.get("head_block") is not None:
                    self.universe.set_head(int(data["head_block"]))
                if data.get("advance_per_request") is not None:
                    self.advance_per_request = int(data["advance_per_request"])
            if method in ("GET", "POST"):
                return 200, {
                    "head_block": self.universe.head,
                    "advance_per_request": self.advance_per_request,
                }
        if (method, route) == ("POST", "reset"):
            self.traffic.reset()
            if self.rate_limiter is not None:
                self.rate_limiter.reset()
            return 200, {"reset": True}
        if (method, route) == ("POST", "rate_limit"):
            if not isinstance(data, dict):
                raise ValueError("expected an object")
            requests = data.get("requests")
            self.set_rate_limit(
                None if requests is None else int(requests), float(data.get("window_s", 1.0))
            )
            return 200, {"rate_limit": self.stats()["rate_limit"]}
        if (method, route) == ("POST", "latency"):
            if not isinstance(data, dict):
                raise ValueError("expected an object")
            self.set_latency(float(data.get("latency_ms", 0.0)), float(data.get("jitter_ms", 0.0)))
            return 200, {"latency_ms": self.latency_ms, "jitter_ms": self.jitter_ms}
        if (method, route) == ("GET", "config"):
            cfg = asdict(self.config)
            cfg.pop("api_key", None)
            return 200, {"config": cfg, "url": self.url, "head_block": self.universe.head}
        return 404, {"error": f"no admin route {method} {path}"}

    def _apply_override_json(self, item: Any) -> None:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise ValueError("each override needs a string 'id'")
        allowed = {
            "id",
            "numerators",
            "denominator",
            "payouts",
            "resolution_timestamp",
            "position_ids",
            "from_block",
            "present",
        }
        unknown = set(item) - allowed
        if unknown:
            raise ValueError(f"unknown override keys: {sorted(unknown)}")
        self.universe.set_override(
            item["id"],
            item.get("numerators"),
            item.get("denominator"),
            payouts=item.get("payouts", ...),
            resolution_timestamp=item.get("resolution_timestamp", ...),
            position_ids=item.get("position_ids"),
            from_block=item.get("from_block"),
            present=bool(item.get("present", True)),
        )


def _override_json(override: Any) -> dict[str, Any]:
    out = asdict(override)
    for key in ("payouts", "resolution_timestamp"):
        if out[key] is Ellipsis:
            out[key] = "derived"
    return out


def _row_id(row: Any) -> str:
    if isinstance(row, dict):
        value = row.get("id")
        if isinstance(value, str):
            return value
    return ""


def _read_body_quietly(handler: BaseHTTPRequestHandler) -> None:
    try:
        _read_body(handler)
    except _BadRequest:
        handler.close_connection = True


# --------------------------------------------------------------------------- entry points
@contextlib.contextmanager
def run_simulator(config: SimulatorConfig | None = None, **overrides: Any) -> Iterator[Simulator]:
    """Start a simulator in a background thread for the duration of a ``with`` block.

    ``overrides`` replace fields of ``config`` (e.g. ``run_simulator(size=1000)``).
    """
    cfg = replace(config or SimulatorConfig(), **overrides)
    sim = Simulator(cfg).start()
    try:
        yield sim
    finally:
        sim.stop()


def serve_forever(config: SimulatorConfig | None = None, *, out: TextIO | None = None) -> None:
    """Run a simulator until SIGTERM/SIGINT; prints exactly one line: the endpoint URL.

    Used by ``python -m payout_standins simulate``; scripts read the URL from the first stdout
    line and control the simulator through ``/_admin/*``.
    """
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _on_signal)
    sim = Simulator(config).start()
    try:
        print(sim.url, file=out or sys.stdout, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
