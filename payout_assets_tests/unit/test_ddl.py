"""The schema rendered for one server, ClickHouse Cloud and a self-managed cluster. No server
or cluster runs here: the rendering is checked as text and by ClickHouse's own parser (the
embedded engine's ``EXPLAIN AST``), which is the same parser a server runs."""

from __future__ import annotations

import re

import pytest

from payout_assets.settings import store_problems
from payout_assets.warehouse.ddl import Target, is_cloud, maintenance, render
from payout_assets.warehouse.schema import schema_statements
from payout_assets.warehouse.sql import statements
from payout_assets.warehouse.store import ClickHouseStore

CLUSTER = Target("payouts_cluster")


def _code(statement: str) -> str:
    return re.sub(r"(?m)^\s*--.*$", "", statement)


def test_one_server_and_cloud_run_the_files_unchanged() -> None:
    plain = schema_statements(Target())
    assert plain and not any("ON CLUSTER" in _code(s) for s in plain)
    assert all(render(s, Target()) == [s] for s in plain)
    assert is_cloud("https://default:pw@abc123.us-east-1.aws.clickhouse.cloud:8443/default")
    assert not is_cloud("https://clickhouse.cloud.example.com:8443")
    assert not is_cloud("chdb:///data/clickhouse")


def test_a_cluster_gets_replicated_local_tables_behind_distributed_ones() -> None:
    rendered = [_code(s) for s in schema_statements(CLUSTER)]
    assert all("ON CLUSTER 'payouts_cluster'" in s for s in rendered)
    created = re.findall(r"CREATE TABLE IF NOT EXISTS (\w+\.\w+) ON CLUSTER", "\n".join(rendered))
    locals_ = {t for t in created if t.endswith("_local")}
    publics = {t for t in created if not t.endswith("_local")}
    assert {f"{t}_local" for t in publics} == locals_  # every table has both halves
    assert "default.resolutions_external_ingest" in publics
    for statement in rendered:
        if "_local ON CLUSTER" in statement and "CREATE TABLE" in statement:
            assert re.search(
                r"ENGINE = Replicated\w*MergeTree\('/clickhouse/tables/\{shard\}/", statement
            )
        if "ENGINE = Distributed" in statement:
            assert "rand()" not in statement  # versions of one id must meet on one shard
        if statement.lstrip().startswith("ALTER TABLE"):
            assert re.match(r"\s*ALTER TABLE \w+\.\w+_local ON CLUSTER", statement)


def test_the_ingest_table_deduplicates_per_condition_on_a_cluster() -> None:
    (local, distributed) = [
        s
        for s in map(_code, schema_statements(CLUSTER))
        if "CREATE TABLE IF NOT EXISTS default.resolutions_external_ingest" in s
    ]
    assert (
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/default/"
        "resolutions_external_ingest_local', '{replica}', version)"
    ) in local
    assert distributed.rstrip().endswith(
        "ENGINE = Distributed('payouts_cluster', 'default', 'resolutions_external_ingest_local', "
        "cityHash64(condition_id))"
    )


def test_a_statement_without_a_cluster_form_is_refused() -> None:
    with pytest.raises(ValueError, match="no cluster form"):
        render("INSERT INTO t VALUES (1)", CLUSTER)


# the run-time statements that change a pipeline table's parts or rows
MAINTENANCE_FILES = (
    "missing/cleanup.sql",
    "shard/drop_run.sql",
    "views/merge_shard_writes.sql",
    "polygon/delete_removed.sql",
    "polygon/delete_rows_after.sql",
    "polygon/delete_chunks_after.sql",
)


# values for their query parameters, so that the server's parser sees whole statements
PARAMETERS = {
    "generation": "g1",
    "shard": 1,
    "run_id": "r1",
    "removed": [("0xab", 1)],
    "block_range": "r",
    "after": 1,
    "last": 2,
}


def _maintenance(target: Target) -> list[str]:
    return [maintenance(s, target) for name in MAINTENANCE_FILES for s in statements(name)]


def test_maintenance_acts_on_a_clusters_local_tables() -> None:
    assert _maintenance(Target()) == [s for n in MAINTENANCE_FILES for s in statements(n)]
    changed = [_code(s) for s in _maintenance(CLUSTER) if re.search(r"ALTER|OPTIMIZE|DELETE", s)]
    assert len(changed) == 7, changed
    for statement in changed:
        assert re.match(
            r"\s*(ALTER TABLE|OPTIMIZE TABLE|DELETE FROM) \w+\.\w+_local ON CLUSTER "
            r"'payouts_cluster'(\s|$)",
            statement,
        ), statement
    drop = "DROP TABLE IF EXISTS {db:Identifier}.{next:Identifier}"
    assert maintenance(drop, CLUSTER) == drop  # a run's scratch table stays where it is


@pytest.mark.integration
@pytest.mark.parametrize("target", [Target(), CLUSTER], ids=["one-server", "cluster"])
def test_every_rendered_statement_parses_as_clickhouse_sql(
    target: Target, store: ClickHouseStore
) -> None:
    """The schema, and the run-time maintenance with its parameters bound (not the statements
    naming a run's scratch table, whose name is the run's)."""
    maintained = [s for s in _maintenance(target) if "Identifier}" not in s]
    with store.session():
        for statement in [*schema_statements(target), *maintained]:
            assert store.query_rows("EXPLAIN AST " + statement, PARAMETERS), statement


@pytest.mark.parametrize(
    ("dsn", "cluster", "says"),
    [
        ("http://default@ch1:8123/default", "payouts_cluster", None),
        ("chdb:///data/clickhouse", "payouts_cluster", "the embedded engine, which has no cluster"),
        ("https://default:pw@abc.eu-west-1.aws.clickhouse.cloud:8443/default", "c", "refuses ON"),
        ("http://default@ch1:8123/default", "x'; DROP", "is not a cluster name"),
    ],
)
def test_clickhouse_cluster_is_checked_against_the_dsn(
    dsn: str, cluster: str, says: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLICKHOUSE_DSN", dsn)
    monkeypatch.setenv("CLICKHOUSE_CLUSTER", cluster)
    problems = store_problems()
    if says is None:
        assert problems == []
    else:
        (problem,) = problems
        assert problem.startswith("CLICKHOUSE_CLUSTER") and says in problem
        assert "pw@" not in problem
