"""The schema's DDL for where the store runs: one server (or the embedded engine), ClickHouse
Cloud, or a self-managed cluster.

The files in ``sql/ddl`` and ``sql/views`` are written for one server, and that text also runs
on ClickHouse Cloud unchanged: Cloud turns every MergeTree-family engine into its Shared*
counterpart itself and refuses ON CLUSTER, so nothing is added there. On a self-managed cluster
(``CLICKHOUSE_CLUSTER=name``) each table becomes a Replicated* table ``<table>_local`` on every
node plus a Distributed table under the public name, sharded by a hash of the row's id, so every
version of a condition lands on one shard and ReplacingMergeTree's deduplication (what FINAL
reads) still holds; databases, ALTERs and views get ON CLUSTER. The pipeline's own maintenance
(dropping a generation's partition, merging what the shards wrote, deleting reorged chain rows)
acts on the ``_local`` tables ON CLUSTER too, since a Distributed table has no parts of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CREATE_DATABASE = re.compile(r"^(.*?CREATE DATABASE IF NOT EXISTS \w+)\s*$", re.S)
_CREATE_TABLE = re.compile(
    r"^(?P<lead>.*?)CREATE TABLE IF NOT EXISTS (?P<db>\w+)\.(?P<table>\w+)\s*\n"
    r"(?P<columns>\(.*?\n\))\s*\n"
    r"ENGINE = (?P<engine>\w*MergeTree)(?:\((?P<args>[^)]*)\))?"
    r"(?P<rest>.*)$",
    re.S,
)
_MAINTENANCE = re.compile(
    r"^(?P<lead>.*?)(?P<verb>ALTER TABLE|OPTIMIZE TABLE|DELETE FROM) (?P<db>\w+)\.(?P<table>\w+)\b"
    r"(?P<rest>.*)$",
    re.S,
)
_VIEW = re.compile(r"^(?P<lead>.*?)CREATE OR REPLACE VIEW (?P<name>[\w.]+) AS\b(?P<rest>.*)$", re.S)
_ORDER_BY = re.compile(r"\bORDER BY \(?(?P<first>\w+)")
# The column whose hash places a row on a shard: a table's own id, so that every version of an
# id is on one shard (ReplacingMergeTree and "latest state" views read versions per shard).
SHARD_KEY_COLUMNS = ("condition_id", "input_id", "raw_id")


@dataclass(frozen=True)
class Target:
    """Where the DDL runs: ``cluster`` names a self-managed cluster (ON CLUSTER, Replicated*
    engines, Distributed tables); None is one server, the embedded engine or ClickHouse Cloud."""

    cluster: str | None = None


def is_cloud(dsn: str) -> bool:
    """ClickHouse Cloud's services are reached at ``*.clickhouse.cloud`` (HTTPS, port 8443)."""
    host = re.sub(r"^\w+://(?:[^@/]*@)?", "", dsn).split("/", 1)[0].split(":", 1)[0]
    return host.endswith(".clickhouse.cloud")


def cluster_problem(dsn: str, cluster: str | None) -> str | None:
    """Why ``cluster`` (CLICKHOUSE_CLUSTER) cannot be used with ``dsn``, with the fix; None if it
    can: a self-managed cluster of servers, not the embedded engine, and not ClickHouse Cloud,
    which replicates by itself and refuses ON CLUSTER."""
    if cluster is None:
        return None
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", cluster):
        return (
            f"CLICKHOUSE_CLUSTER={cluster!r} is not a cluster name: set it to the name in the "
            "servers' remote_servers (letters, digits, _ . -), or unset it"
        )
    if dsn.startswith("chdb:"):
        return (
            "CLICKHOUSE_CLUSTER is set but CLICKHOUSE_DSN is the embedded engine, which has no "
            "cluster: unset CLICKHOUSE_CLUSTER, or point CLICKHOUSE_DSN at a node of the cluster"
        )
    if is_cloud(dsn):
        return (
            "CLICKHOUSE_CLUSTER is set but CLICKHOUSE_DSN is ClickHouse Cloud, which replicates "
            "every table itself and refuses ON CLUSTER: unset CLICKHOUSE_CLUSTER"
        )
    return None


def created_table(statement: str) -> str | None:
    """``db.table`` when ``statement`` creates a MergeTree-family table, else None."""
    match = _CREATE_TABLE.match(statement)
    return f"{match['db']}.{match['table']}" if match else None


def render(statement: str, target: Target) -> list[str]:
    """``statement`` as ``target`` runs it (one or, for a clustered table, two statements)."""
    if target.cluster is None:
        return [statement]
    on_cluster = f"ON CLUSTER '{target.cluster}'"
    if match := _CREATE_DATABASE.match(statement):
        return [f"{match.group(1)} {on_cluster}"]
    if match := _CREATE_TABLE.match(statement):
        return _clustered_table(match, target.cluster, on_cluster)
    if _MAINTENANCE.match(statement):  # the schema's ALTERs, as the pipeline's own
        return [maintenance(statement, target)]
    if match := _VIEW.match(statement):
        return [
            f"{match['lead']}CREATE OR REPLACE VIEW {match['name']} {on_cluster} AS{match['rest']}"
        ]
    raise ValueError(f"no cluster form for this statement: {statement.strip()[:120]!r}")


def maintenance(statement: str, target: Target) -> str:
    """A statement the pipeline runs at run time as ``target`` runs it: on a cluster an ALTER,
    OPTIMIZE or DELETE of a pipeline table acts on its ``_local`` tables ON CLUSTER (a
    Distributed table holds no parts); every other statement, and every statement on one
    server, is unchanged."""
    if target.cluster is None or not (match := _MAINTENANCE.match(statement)):
        return statement
    table = f"{match['db']}.{match['table']}_local ON CLUSTER '{target.cluster}'"
    return f"{match['lead']}{match['verb']} {table}{match['rest']}"


def _clustered_table(match: re.Match[str], cluster: str, on_cluster: str) -> list[str]:
    db, table, columns = match["db"], match["table"], match["columns"]
    local = f"{table}_local"
    path = f"'/clickhouse/tables/{{shard}}/{db}/{local}', '{{replica}}'"
    args = f"{path}, {match['args']}" if match["args"] else path
    engine = f"Replicated{match['engine']}({args})"
    create_local = (
        f"{match['lead']}CREATE TABLE IF NOT EXISTS {db}.{local} {on_cluster}\n{columns}\n"
        f"ENGINE = {engine}{match['rest']}"
    )
    create_distributed = (
        f"CREATE TABLE IF NOT EXISTS {db}.{table} {on_cluster} AS {db}.{local}\n"
        f"ENGINE = Distributed('{cluster}', '{db}', '{local}', {shard_key(columns, match['rest'])})"
    )
    return [create_local, create_distributed]


def shard_key(columns: str, rest: str) -> str:
    """cityHash64 of the table's id column, else of its first sorting column."""
    for column in SHARD_KEY_COLUMNS:
        if re.search(rf"^\s*{column}\s", columns, re.M):
            return f"cityHash64({column})"
    order = _ORDER_BY.search(rest)
    if order is None:
        raise ValueError("a clustered table needs an id column or an ORDER BY to shard by")
    return f"cityHash64({order['first']})"
