"""What a request asks: its document parsed and validated once per query text, the operation
it names, the ids it filters on, and graph-node's wording for what is wrong with it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import graphql
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
)
from graphql.utilities import value_from_ast_untyped

from .execution import (
    _NO_FIELD_PREFIX,
    _NULL_PREFIX,
    load_schema,
)
from .faults import (
    RequestInfo,
)


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
