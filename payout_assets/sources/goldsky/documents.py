"""The subgraph's queries: ``.graphql`` files parsed by gql and validated against the dialect's
schema when a client is built, so a typo fails at start-up, not after an hour."""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from gql import gql
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLList,
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    get_nullable_type,
    validate,
)

from payout_assets.sources.goldsky.errors import PermanentGoldskyError

MAX_FIRST = 1000
_HERE = Path(__file__).resolve().parent


class Dialect(StrEnum):
    """Which shape of ``Condition`` the endpoint serves."""

    PNL = "pnl"  # pnl-subgraph: integer payoutNumerators / payoutDenominator
    LEGACY = "legacy"  # old main subgraph / positions-subgraph: decimal payouts, timestamp


@cache
def schema(dialect: Dialect) -> GraphQLSchema:
    return build_schema((_HERE / "schemas" / f"{dialect.value}.graphql").read_text())


@cache
def document(name: str, dialect: Dialect) -> Any:
    """A query document, parsed by gql and validated against the dialect's schema."""
    document = gql((_HERE / "queries" / f"{name}.graphql").read_text()).document
    errors = validate(schema(dialect), document)
    if errors:
        raise PermanentGoldskyError(
            f"query {name}.graphql does not fit the {dialect} schema: {errors[0].message}"
        )
    require_first(name, document, schema(dialect))
    return document


def require_first(name: str, document: DocumentNode, schema: GraphQLSchema) -> None:
    """Refuse a document whose collection fields do not set ``first``.

    Why: graph-node silently caps a collection at 100 rows when ``first`` is omitted, which is
    how the original scripts lost ~90% of the resolved ids without any error. The omission is
    invisible in every answer, so it is caught here, when the client is built.
    """
    query_type = schema.query_type
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode) or query_type is None:
            continue
        for selection in definition.selection_set.selections:
            if not isinstance(selection, FieldNode):
                continue
            root_field = query_type.fields.get(selection.name.value)
            if root_field is None or not isinstance(
                get_nullable_type(root_field.type), GraphQLList
            ):
                continue
            if not any(arg.name.value == "first" for arg in selection.arguments or ()):
                raise PermanentGoldskyError(
                    f"query {name}.graphql asks for the collection `{selection.name.value}` "
                    "without `first`: graph-node would return at most 100 rows per request and "
                    "silently drop the rest; pass `first: $first` set to the batch size"
                )
