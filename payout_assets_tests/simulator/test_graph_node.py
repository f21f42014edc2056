"""Tests of the Goldsky / graph-node simulator, over real HTTP on 127.0.0.1.

The simulator is a product feature (demo, client tests, benchmark), so these tests pin
the graph-node behaviours the backfill depends on: `first` defaulting to 100 (the bug of
the original scripts), cursor paging, time travel, graph-node's error texts, and that
every fault does exactly what it says.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import graphql
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payout_assets_tests.simulator.support import (
    by_ids,
    messages,
    post,
)
from payout_standins.goldsky import (
    GENESIS_TIMESTAMP,
    SCHEMA_DIR,
    Simulator,
    SimulatorConfig,
    Universe,
    block_hash,
    block_timestamp,
    run_simulator,
)

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------- schema files
@pytest.mark.parametrize("dialect", ["pnl", "legacy"])
def test_sdl_files_build_and_declare_graph_node_arguments(dialect: str) -> None:
    schema = graphql.build_schema((SCHEMA_DIR / f"{dialect}.graphql").read_text())
    query = schema.query_type
    assert query is not None
    args = query.fields["conditions"].args
    assert args["first"].default_value == 100 and args["skip"].default_value == 0
    assert {"orderBy", "orderDirection", "where", "block", "subgraphError"} <= set(args)
    filt = schema.type_map["Condition_filter"]
    assert isinstance(filt, graphql.GraphQLInputObjectType)
    expected = {"id", "id_not", "id_gt", "id_gte", "id_lt", "id_lte", "id_in", "id_not_in"}
    assert expected | {"_change_block", "and", "or"} == set(filt.fields)
    assert {"hash", "number", "number_gte"} == set(
        schema.type_map["Block_height"].fields  # type: ignore[attr-defined]
    )


# --------------------------------------------------------------------------- universe
def test_universe_ids_are_structured_and_sorted_by_index() -> None:
    u = Universe(1000, seed=3)
    ids = [u.condition_id(i) for i in range(1000)]
    assert ids == sorted(ids)
    assert all(len(c) == 66 and c == c.lower() and c.startswith("0x") for c in ids)
    assert u.index_of(ids[417]) == 417
    assert u.index_of(u.condition_id(1000)) is None  # right prefix, beyond size
    assert u.index_of(u.unknown_id(5)) is None
    assert u.index_of(ids[3].upper().replace("0X", "0x")) is None
    assert u.state(u.unknown_id(5)) is None
    assert Universe(10, seed=4).condition_id(0) != u.condition_id(0)


def test_universe_shares_and_payout_vectors() -> None:
    u = Universe(4000, seed=11, resolved_share=0.75, split_share=0.05)
    states = [u.state(cid) for cid in u.ids()]
    assert all(s is not None for s in states)
    resolved = [s for s in states if s is not None and s.resolved]
    assert 0.70 < len(resolved) / len(states) < 0.80
    vectors = {(s.numerators, s.denominator) for s in resolved}
    assert vectors == {(("1", "0"), "1"), (("0", "1"), "1"), (("1", "1"), "2")}
    split = sum(1 for s in resolved if s.denominator == "2") / len(resolved)
    assert 0.02 < split < 0.09
    for s in resolved:
        assert s.resolved_block is not None and s.created_block < s.resolved_block <= u.head
        assert s.resolution_timestamp == str(GENESIS_TIMESTAMP + 2 * s.resolved_block)


@settings(max_examples=60, deadline=None)
@given(
    bound=st.one_of(
        st.integers(min_value=0, max_value=80),
        st.text(alphabet="0123456789abcdefx", min_size=0, max_size=70),
    ),
    op=st.sampled_from(["gt", "gte", "lt", "lte"]),
    descending=st.booleans(),
)
def test_iter_ids_bounds_match_string_comparison(
    bound: int | str, op: str, descending: bool
) -> None:
    u = Universe(64, seed=1)
    u.set_override(u.unknown_id(2), ["1", "0"], "1")
    u.set_override(u.condition_id(70), ["0", "1"], "1")
    every = sorted([*u.ids(), u.unknown_id(2), u.condition_id(70)])
    x = u.condition_id(bound) if isinstance(bound, int) else bound
    compare = {
        "gt": lambda c: c > x,
        "gte": lambda c: c >= x,
        "lt": lambda c: c < x,
        "lte": lambda c: c <= x,
    }[op]
    expected = [c for c in every if compare(c)]
    got = list(u.iter_ids(descending=descending, **{op: x}))
    assert got == (expected[::-1] if descending else expected)


# --------------------------------------------------------------------------- graph-node rules
def test_first_defaults_to_100_even_with_1000_ids(client: httpx.Client, sim: Simulator) -> None:
    ids = [sim.universe.condition_id(i) for i in range(1000)]
    body = by_ids(client, sim, ids)  # no `first`: the original scripts' bug
    rows = body["data"]["conditions"]
    assert len(rows) == 100
    assert [r["id"] for r in rows] == ids[:100]
    assert sim.stats()["collection_queries_without_first"] == 1


def test_first_max_1000_and_out_of_range_errors(client: httpx.Client, sim: Simulator) -> None:
    ids = [sim.universe.condition_id(i) for i in range(1200)]
    assert len(by_ids(client, sim, ids, first=1000)["data"]["conditions"]) == 1000
    for bad in (1001, 0, -5):
        body = by_ids(client, sim, ids, first=bad)
        assert "data" not in body
        assert messages(body) == [f"The `first` argument must be between 0 and 1000, but is {bad}"]


def test_skip_and_skip_cap(client: httpx.Client, sim: Simulator) -> None:
    q = "query($s: Int) { conditions(first: 5, skip: $s) { id } }"
    rows = post(client, sim, q, {"s": 10}).json()["data"]["conditions"]
    assert [r["id"] for r in rows] == [sim.universe.condition_id(i) for i in range(10, 15)]
    body = post(client, sim, q, {"s": 5001}).json()
    assert messages(body) == ["The `skip` argument must be between 0 and 5000, but is 5001"]


def test_id_in_unknown_ids_are_absent(client: httpx.Client, sim: Simulator) -> None:
    u = sim.universe
    known = [u.condition_id(i) for i in (5, 2999, 0)]
    unknown = [u.unknown_id(1), u.condition_id(3000), known[0].upper(), "0xdead", ""]
    rows = by_ids(client, sim, unknown + known, first=50)["data"]["conditions"]
    assert [r["id"] for r in rows] == sorted(known)


def test_id_gt_paging_is_complete_and_ordered(client: httpx.Client, sim: Simulator) -> None:
    q = (
        "query Page($after: ID!) { conditions(first: 1000, orderBy: id, orderDirection: asc,"
        " where: {id_gt: $after}) { id } }"
    )
    seen: list[str] = []
    cursor = ""
    for _ in range(10):  # 3000 ids -> 3 full pages + 1 empty page
        rows = post(client, sim, q, {"after": cursor}).json()["data"]["conditions"]
        if not rows:
            break
        seen.extend(r["id"] for r in rows)
        cursor = rows[-1]["id"]
    assert seen == list(sim.universe.ids())
    middle = sim.universe.page(id_gt=seen[1499], first=3)
    assert [s.id for s in middle] == seen[1500:1503]
    stats = sim.stats()
    assert stats["rows_returned"] == stats["rows_returned_distinct"] == 3000

    desc = "{ conditions(first: 3, orderBy: id, orderDirection: desc) { id } }"
    rows = post(client, sim, desc).json()["data"]["conditions"]
    assert [r["id"] for r in rows] == [sim.universe.condition_id(i) for i in (2999, 2998, 2997)]
    # graph-node ignores orderDirection without orderBy: default order is id ascending.
    rows = post(client, sim, "{ conditions(first: 2, orderDirection: desc) { id } }").json()
    assert [r["id"] for r in rows["data"]["conditions"]] == list(sim.universe.ids(0, 2))


def test_filters_and_or_not_in_and_condition_lookup(client: httpx.Client, sim: Simulator) -> None:
    u = sim.universe
    a, b, c = (u.condition_id(i) for i in (10, 20, 30))
    q = "query($w: Condition_filter) { conditions(first: 100, where: $w) { id } }"

    def ids_for(where: dict[str, Any]) -> list[str]:
        body = post(client, sim, q, {"w": where}).json()
        return [r["id"] for r in body["data"]["conditions"]]

    assert ids_for({"or": [{"id": a}, {"id_in": [c, u.unknown_id(0)]}]}) == [a, c]
    assert ids_for({"id_in": [a, b, c], "id_not_in": [b]}) == [a, c]
    assert ids_for({"and": [{"id_gte": a}, {"id_lte": c}], "id_not": b}) == [
        u.condition_id(i) for i in range(10, 31) if i != 20
    ]
    body = post(client, sim, q, {"w": {"id_in": [a], "or": [{"id": b}]}}).json()
    assert messages(body)[0].startswith(
        "Cannot mix column filters with 'or' operator at the same level."
    )
    one = post(client, sim, "query($id: ID!) { condition(id: $id) { id } }", {"id": b}).json()
    assert one == {"data": {"condition": {"id": b}}}
    none = post(client, sim, '{ condition(id: "0xabc") { id } }').json()
    assert none == {"data": {"condition": None}}


def test_block_time_travel_and_beyond_head_error(client: httpx.Client) -> None:
    with run_simulator(size=400, seed=5, head_block=1_000_000) as sim:
        u = sim.universe
        at = 700_000
        q = (
            "query($b: Int!) { conditions(first: 1000, block: {number: $b}) "
            "{ id payoutNumerators payoutDenominator } }"
        )
        rows = post(client, sim, q, {"b": at}).json()["data"]["conditions"]
        expected = [s.to_pnl() for s in (u.state(c, at) for c in u.ids()) if s is not None]
        expected = [
            {k: r[k] for k in ("id", "payoutNumerators", "payoutDenominator")} for r in expected
        ]
        assert rows == expected
        assert 0 < len(rows) < 400  # conditions created after block 700k are absent
        resolved_then = sum(1 for r in rows if r["payoutDenominator"] != "0")
        now = post(client, sim, q, {"b": u.head}).json()["data"]["conditions"]
        assert sum(1 for r in now if r["payoutDenominator"] != "0") > resolved_then
        unresolved = next(r for r in rows if r["payoutDenominator"] == "0")
        assert unresolved["payoutNumerators"] == []

        body = post(client, sim, q, {"b": 1_000_001}).json()
        assert "data" not in body
        assert messages(body) == [
            "Failed to decode `block.number` value: `subgraph QmSimulated has only indexed up to "
            "block number 1000000 and data for block number 1000001 is therefore not yet "
            "available`"
        ]
        by_hash = (
            "query($h: Bytes!) { _meta(block: {hash: $h}) { block { number } } "
            "conditions(first: 1, block: {hash: $h}) { id } }"
        )
        meta = post(client, sim, by_hash, {"h": block_hash(at)}).json()["data"]["_meta"]
        assert meta["block"]["number"] == at
        bad = post(client, sim, by_hash, {"h": "0x" + "ab" * 32}).json()
        assert messages(bad) == [
            "Failed to decode `block.hash` value: `no block with that hash found`"
        ]


def test_meta(client: httpx.Client, sim: Simulator) -> None:
    q = "{ _meta { block { number hash timestamp parentHash } deployment hasIndexingErrors } }"
    meta = post(client, sim, q).json()["data"]["_meta"]
    head = sim.universe.head
    assert meta == {
        "block": {
            "number": head,
            "hash": block_hash(head),
            "timestamp": block_timestamp(head),
            "parentHash": block_hash(head - 1),
        },
        "deployment": "QmSimulated",
        "hasIndexingErrors": False,
    }


def test_change_block_filter(client: httpx.Client, sim: Simulator) -> None:
    u = sim.universe
    since = u.head - 2_000_000
    q = (
        "query($n: Int!, $after: ID!) { conditions(first: 1000, orderBy: id, "
        "where: {_change_block: {number_gte: $n}, id_gt: $after}) { id } }"
    )
    got: list[str] = []
    cursor = ""
    for _ in range(10):
        rows = post(client, sim, q, {"n": since, "after": cursor}).json()["data"]["conditions"]
        if not rows:
            break
        got.extend(r["id"] for r in rows)
        cursor = rows[-1]["id"]
    expected = [
        c for c in u.ids() if (s := u.state(c)) is not None and s.last_change_block >= since
    ]
    assert got == expected
    assert 0 < len(expected) < u.size


def test_unknown_field_and_invalid_queries(client: httpx.Client, sim: Simulator) -> None:
    body = post(client, sim, "{ conditions { id payouts } }").json()
    assert "data" not in body
    assert messages(body) == ["Type `Condition` has no field `payouts`"]
    assert body["errors"][0]["locations"] == [{"line": 1, "column": 19}]
    syntax = post(client, sim, "{ conditions { id ").json()
    assert messages(syntax) and messages(syntax)[0].startswith("Syntax Error")


def test_null_in_non_null_field_is_a_graph_node_error(client: httpx.Client, sim: Simulator) -> None:
    cid = sim.universe.condition_id(1)
    sim.universe.set_override(cid, None, None)
    body = by_ids(client, sim, [cid], first=10)
    assert "data" not in body
    assert messages(body) == ["Null value resolved for non-null field `payoutNumerators`"]


def test_legacy_dialect_decimals_and_nulls(client: httpx.Client) -> None:
    with run_simulator(size=2000, seed=9, dialect="legacy", split_share=0.2) as sim:
        u = sim.universe
        assert "/positions-subgraph/" in sim.url
        rows = by_ids(client, sim, list(u.ids(0, 1000)), first=1000)["data"]["conditions"]
        assert len(rows) == 1000
        split = [r for r in rows if r["payoutDenominator"] == "2"]
        assert split and all(r["payouts"] == ["0.5", "0.5"] for r in split)
        binary = [r for r in rows if r["payoutDenominator"] == "1"]
        assert binary and all(sorted(r["payouts"]) == ["0", "1"] for r in binary)
        unresolved = [r for r in rows if r["payoutDenominator"] is None]
        assert unresolved
        for r in unresolved:
            assert r["payouts"] is None and r["payoutNumerators"] is None
            assert r["resolutionTimestamp"] is None
        for r in binary + split:
            s = u.state(r["id"])
            assert s is not None and s.resolved_block is not None
            assert r["resolutionTimestamp"] == str(block_timestamp(s.resolved_block))
            assert r["outcomeSlotCount"] == 2

        third = u.condition_id(3)
        u.set_override(third, [1, 2], 3)
        row = by_ids(client, sim, [third], first=1)["data"]["conditions"][0]
        assert row["payouts"] == [
            "0.3333333333333333333333333333333333",
            "0.6666666666666666666666666666666667",
        ]
        assert Decimal(row["payouts"][0]) + Decimal(row["payouts"][1]) == 1
        pnl_only = post(client, sim, "{ conditions { positionIds } }").json()
        assert messages(pnl_only) == ["Type `Condition` has no field `positionIds`"]


def test_overrides_are_served_verbatim(client: httpx.Client, sim: Simulator) -> None:
    u = sim.universe
    big = str(2**256 - 1)
    cases = {
        u.condition_id(0): (["1", "1"], "3"),  # sum mismatch
        u.condition_id(1): ([big, "0"], big),  # uint256
        u.condition_id(2): (["-1", "2"], "1"),  # negative
        u.condition_id(3): (["1"], "1"),  # single numerator
        u.condition_id(4): (["1", "0", "0", "0"], "1"),  # four outcomes
        u.unknown_id(9): (["0", "1"], "1"),  # unknown id becomes visible
    }
    for cid, (nums, den) in cases.items():
        u.set_override(cid, nums, den)
    u.set_override(u.condition_id(5), None, None, present=False)  # hide a known id
    u.set_override(u.condition_id(7), [], "0")  # an explicit unresolved answer
    assert not (u.state(u.condition_id(7)) or pytest.fail()).resolved
    assert (u.state(u.condition_id(0)) or pytest.fail()).resolved
    ids = [*cases, u.condition_id(5)]
    rows = by_ids(client, sim, ids, first=100)["data"]["conditions"]
    assert {r["id"]: (r["payoutNumerators"], r["payoutDenominator"]) for r in rows} == cases

    later = u.condition_id(6)
    u.set_override(later, ["0", "1"], "1", from_block=u.head + 10)
    q = "query($id: ID!, $b: Int) { condition(id: $id, block: {number: $b}) { payoutDenominator } }"
    before = post(client, sim, q, {"id": later, "b": u.head}).json()["data"]["condition"]
    assert before == {"payoutDenominator": (u.state(later) or pytest.fail()).pnl_denominator}
    u.set_head(u.head + 10)
    after = post(client, sim, q, {"id": later, "b": u.head}).json()["data"]["condition"]
    assert after == {"payoutDenominator": "1"}


def test_head_advances_per_request_and_pinned_block_is_stable(client: httpx.Client) -> None:
    cfg = SimulatorConfig(size=300, seed=2, head_block=100_000, advance_per_request=400)
    with run_simulator(cfg) as sim:
        u = sim.universe
        meta = "{ _meta { block { number } } }"
        h1 = post(client, sim, meta).json()["data"]["_meta"]["block"]["number"]
        h2 = post(client, sim, meta).json()["data"]["_meta"]["block"]["number"]
        assert h2 == h1 + 400
        q = (
            "query($b: Int!) { conditions(first: 1000, block: {number: $b}) "
            "{ id payoutNumerators payoutDenominator } }"
        )
        pinned = post(client, sim, q, {"b": h1}).json()["data"]["conditions"]
        u.set_head(u.anchor_block + u.future_blocks + 1)  # every future resolution happened
        assert post(client, sim, q, {"b": h1}).json()["data"]["conditions"] == pinned
        latest = "{ conditions(first: 1000) { payoutDenominator } }"
        now = post(client, sim, latest).json()["data"]["conditions"]
        count = sum(1 for r in now if r["payoutDenominator"] != "0")
        assert count > sum(1 for r in pinned if r["payoutDenominator"] != "0")


# --------------------------------------------------------------------------- HTTP layer
def test_malformed_requests_get_400_and_routes(client: httpx.Client, sim: Simulator) -> None:
    bad_json = client.post(
        sim.url, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status_code == 400
    assert client.post(sim.url, json={"variables": {}}).status_code == 400
    assert client.post(sim.url, json={"query": "  "}).status_code == 400
    assert client.post(sim.url, json=["query"]).status_code == 400
    assert client.get(sim.url).status_code == 405
    assert client.post(sim.base_url + "/nope", json={"query": "{x}"}).status_code == 404
    root = client.post(sim.base_url + "/", json={"query": "{ _meta { deployment } }"})
    assert root.json() == {"data": {"_meta": {"deployment": "QmSimulated"}}}
    assert sim.url.endswith("/api/public/project_simulated/subgraphs/pnl-subgraph/0.0.14/gn")
    assert sim.stats()["bad_requests"] == 4


def test_api_key_auth(client: httpx.Client) -> None:
    with run_simulator(size=10, api_key="s3cret") as sim:
        q = {"query": "{ _meta { deployment } }"}
        assert client.post(sim.url, json=q).status_code == 401
        wrong = client.post(sim.url, json=q, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = client.post(sim.url, json=q, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        stats = sim.stats()
        assert stats["unauthorized"] == 2 and stats["with_authorization"] == 2
        records = client.get(sim.admin_url("requests")).json()["requests"]
        assert [r["authorization"] for r in records] == [False, True, True]
        assert "s3cret" not in json.dumps(records)
        assert "s3cret" not in client.get(sim.admin_url("config")).text


def test_concurrent_requests_are_served(client: httpx.Client) -> None:
    with run_simulator(size=2000, latency_ms=100) as sim:
        ids = list(sim.universe.ids())

        def one(k: int) -> int:
            chunk = ids[k * 100 : (k + 1) * 100]
            body = by_ids(client, sim, chunk, first=100)
            return len(body["data"]["conditions"])

        with ThreadPoolExecutor(max_workers=16) as pool:
            assert list(pool.map(one, range(20))) == [100] * 20
        stats = sim.stats()
        assert stats["requests"] == 20 and stats["by_status"] == {"200": 20}
        assert stats["max_in_flight"] > 1
        assert stats["ids_served_distinct"] == 2000
