"""The Goldsky client's contract beyond transient faults (those are in test_client_faults.py; fixtures in this folder's conftest.py):
permanent errors fail fast with one clear message, both schema dialects land exact payouts,
adversarial payloads are rejected with the rule they break, one snapshot block per backfill
(what it sends and how much: test_client_requests.py).

Why these are tested against the simulator over real HTTP (and mostly through the real assets):
each property failed silently in the original scripts, so each test reads what ended up in
ClickHouse, not only what the client returned.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from payout_assets.sources.goldsky.client import Dialect
from payout_assets.sources.goldsky.errors import (
    BlockNotIndexedError,
    PermanentGoldskyError,
)
from payout_assets.warehouse import tables
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets_tests.client.support import (
    FAST,
    SIM_CONFIG,
    Template,
    clean_counts,
    client_for,
    fetch_and_ingest,
    fetch_failure,
    fresh_pipeline,
    ingested_blocks,
    input_ids,
    ledger,
    payout_requests,
    sub_ids,
)
from payout_assets_tests.conftest import Pipeline
from payout_assets_tests.payouts import expected_payouts, ingested
from payout_standins.goldsky import Simulator, run_simulator

pytestmark = pytest.mark.integration

UINT256_MAX = 2**256 - 1
UINT64_MAX = 2**64 - 1

# -- permanent errors: fail fast, one message naming the cause and the fix -----------------------


PERMANENT = [
    pytest.param(
        {},
        {"dialect": Dialect.LEGACY},
        "fetch",
        ["has no field `payouts`", "unset GOLDSKY_DIALECT or set it to pnl"],
        id="legacy-client-on-pnl-endpoint",
    ),
    pytest.param(
        {"max_first": 500},
        {},
        "fetch",
        ["`first` argument must be between 0 and 500, but is 1000", "batch_size"],
        id="first-above-the-hosts-cap",
    ),
    pytest.param(
        {"api_key": "sk-expected"},
        {},
        "meta",
        ["HTTP 401", "no API key was sent", "GOLDSKY_API_KEY"],
        id="401-missing-api-key",
    ),
    pytest.param(
        {"api_key": "sk-expected"},
        {"api_key": "sk-other"},
        "meta",
        ["HTTP 401", "refused", "GOLDSKY_API_KEY"],
        id="401-wrong-api-key",
    ),
]


@pytest.mark.parametrize(("sim_config", "settings", "call", "message"), PERMANENT)
def test_permanent_error_fails_fast_with_one_clear_message(
    tmp_path: Path,
    sim_config: dict[str, Any],
    settings: dict[str, Any],
    call: str,
    message: list[str],
) -> None:
    """One request, no retry, and the one exception says what is wrong and what to change."""
    with run_simulator(replace(SIM_CONFIG, **sim_config)) as sim:
        with client_for(sim, tmp_path, **settings) as client:
            with pytest.raises(PermanentGoldskyError) as caught:
                if call == "meta":
                    client.meta()
                else:
                    client.fetch_payouts(sub_ids(sim, 1000), sim.universe.head)
            assert client.requests_sent == 1 and client.retries == 0
        assert sim.traffic.stats()["requests"] == 1
    text = str(caught.value)
    for part in message:
        assert part in text, (part, text)
    assert "sk-" not in text  # a credential never appears in a message


def test_block_beyond_head_that_never_catches_up_gives_up_with_the_fix(tmp_path: Path) -> None:
    """The pinned block is retried a bounded number of times (an indexer may lag), then the one
    error names the cause (the head the endpoint has) and the fix (take a new snapshot)."""
    with run_simulator(SIM_CONFIG) as sim, client_for(sim, tmp_path, max_attempts=4) as client:
        head = sim.universe.head
        with pytest.raises(BlockNotIndexedError) as caught:
            client.fetch_payouts(sub_ids(sim, 10), head + 1_000)
        assert sim.traffic.stats()["requests"] == client.requests_sent == 4
    text = str(caught.value)
    assert f"has only indexed up to block number {head}" in text
    assert "re-materialise missing_condition_ids" in text
    assert "gave up after 4 attempts" in text
    assert len(caught.value.condition_ids) == 10


def test_block_beyond_head_that_catches_up_is_served(tmp_path: Path) -> None:
    """A lagging indexer that reaches the pinned block within the retries is not an error."""
    config = replace(SIM_CONFIG, advance_per_request=1)
    with run_simulator(config) as sim, client_for(sim, tmp_path, max_attempts=5) as client:
        pinned = sim.universe.head + 3  # reached on the third request
        rows = client.fetch_payouts(sub_ids(sim, 50), pinned)
        assert client.requests_sent == 3 and client.retries == 2
        assert {r.condition_id for r in rows} == set(sub_ids(sim, 50))


def test_pnl_client_on_a_legacy_endpoint_reads_the_same_integers(tmp_path: Path) -> None:
    """Not an error: the legacy schema also has (nullable) ``payoutNumerators`` and
    ``payoutDenominator``, so the pnl query is valid there and reads the exact integers (unresolved
    is null instead of ``[]``/``"0"``). Only the opposite mismatch is a permanent error."""
    with run_simulator(replace(SIM_CONFIG, dialect="legacy")) as sim:
        with client_for(sim, tmp_path) as client:
            head = sim.universe.head
            rows = client.fetch_payouts(sub_ids(sim, 300), head)
            assert client.retries == 0
        for row in rows:
            state = sim.universe.state("0x" + row.condition_id, head)
            assert state is not None
            assert row.payout_numerators == state.numerators
            assert row.payout_denominator == state.denominator


PERMANENT_IN_A_SHARD = [
    pytest.param(
        {"dialect": "legacy"},
        None,
        "has no field `payouts`",
        "GOLDSKY_DIALECT",
        1,
        id="legacy-dialect-on-pnl-endpoint",
    ),
    pytest.param(
        {"max_attempts": 3},
        -1,
        "has only indexed up to block number",
        "re-materialise missing_condition_ids",
        3,
        id="pinned-block-never-indexed",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "head_offset", "cause", "fix", "attempts"), PERMANENT_IN_A_SHARD
)
def test_permanent_error_fails_the_shard_with_one_message_and_no_rows(
    snapshot_pipeline: Pipeline,
    sim: Simulator,
    template: Template,
    overrides: dict[str, Any],
    head_offset: int | None,
    cause: str,
    fix: str,
    attempts: int,
) -> None:
    """Through the real asset: the shard fails once, its message names cause and fix once, the
    requests are bounded (no retry storm), nothing is ingested and every id is ``failed``."""
    snapshot_pipeline.goldsky_overrides = overrides
    if head_offset is not None:
        sim.set_head(template.block + head_offset)  # the endpoint is behind the snapshot

    result = fetch_and_ingest(snapshot_pipeline, "shard-00")

    assert not result.success
    description, metadata = fetch_failure(result)
    assert description.count(cause) == 1 and fix in description
    assert metadata["error"] in description
    batches = math.ceil(len(template.ids) / 1000)
    assert len(payout_requests(sim)) <= batches * attempts
    assert ingested(snapshot_pipeline.store) == {}
    states = ledger(snapshot_pipeline.store, template.generation)
    assert {state for state, _ in states.values()} == {"failed"}


# -- dialects and payloads -------------------------------------------------------------------------


def legacy_truth(
    sim: Simulator, ids: list[str], block: int
) -> dict[str, tuple[list[int], int, int | None]]:
    """Exact (numerators, denominator, resolution timestamp) the legacy subgraph implies, computed
    independently of the client: integers when given, else decimal shares over their LCD."""
    out: dict[str, tuple[list[int], int, int | None]] = {}
    for cid in ids:
        state = sim.universe.state("0x" + cid, block)
        if state is None:
            continue
        if state.numerators is not None and state.denominator is not None:
            nums, den = [int(n) for n in state.numerators], int(state.denominator)
        elif state.payouts is not None:
            shares = [Fraction(Decimal(p)) for p in state.payouts]
            den = math.lcm(*(f.denominator for f in shares))
            nums = [int(f * den) for f in shares]
        else:
            continue
        ts = int(state.resolution_timestamp) if state.resolution_timestamp else None
        out[cid] = (nums, den, ts)
    return out


def _epoch(value: datetime | None) -> int | None:
    """Seconds since the epoch of a stored ``DateTime('UTC')`` (naive values are UTC)."""
    return None if value is None else int(value.replace(tzinfo=value.tzinfo or UTC).timestamp())


def test_legacy_dialect_lands_exact_integers_and_resolution_times(
    store: ClickHouseStore,
    fast_instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    """The old schema end to end: decimal ``payouts`` become exact integer numerators over their
    least common denominator, ``resolutionTimestamp`` becomes ``resolved_at``, and decimals
    that are not a payout are rejected with the rule they break."""
    with run_simulator(replace(SIM_CONFIG, dialect="legacy")) as sim:
        ids = input_ids(sim, known=1_500, unknown=30)
        ts = 1_700_000_000
        decimals = {
            ids[0]: ["0.54", "0.46"],  # → [27, 23] / 50
            ids[1]: ["0.5", "0.5"],  # → [1, 1] / 2, a split
            ids[2]: ["1", "0"],  # → [1, 0] / 1
            ids[3]: ["0.25", "0.75"],  # → [1, 3] / 4
        }
        bad = {
            ids[4]: (["0.5", "0.6"], "numerator_sum_equals_denominator"),
            ids[5]: (["-0.5", "1.5"], "negative share"),
            # 34 significant digits (graph-node's BigDecimal): exact, but beyond UInt64
            ids[6]: (
                ["0.3333333333333333333333333333333333", "0.6666666666666666666666666666666667"],
                "numerators_fit_uint64",
            ),
        }
        for cid, shares in {**decimals, **{c: s for c, (s, _) in bad.items()}}.items():
            sim.universe.set_override(
                "0x" + cid, None, None, payouts=shares, resolution_timestamp=ts
            )
        pipeline = fresh_pipeline(
            store, sim, fast_instance, ids, tmp_path, {"dialect": "legacy", **FAST}
        )
        pipeline.snapshot()
        result = fetch_and_ingest(pipeline, "shard-00")
        assert result.success
        snapshot = tables.current_snapshot(store)
        assert snapshot is not None
        truth = legacy_truth(sim, ids, snapshot.block_number)

    good = {c: v for c, v in truth.items() if c not in bad}
    rows = {
        cid: (list(nums), int(den), _epoch(at))
        for cid, nums, den, at in store.query_rows(
            "SELECT condition_id, payout_numerators, payout_denominator, resolved_at "
            "FROM default.resolutions_external_ingest FINAL"
        )
    }
    assert rows == good
    assert rows[ids[0]] == ([27, 23], 50, ts)
    assert rows[ids[1]][:2] == ([1, 1], 2) and rows[ids[3]][:2] == ([1, 3], 4)
    assert all(at is not None for _, _, at in rows.values())  # the legacy schema has the time
    states = ledger(store, snapshot.generation)
    for cid, (_, rule) in bad.items():
        assert states[cid][0] == "rejected" and rule in states[cid][1], states[cid]
    assert tables.state_counts(store, snapshot.generation) == {
        "ingested": len(good),
        "rejected": len(bad),
        "unresolved": 1_500 - len(good) - len(bad),
        "not_found": 30,
    }


def test_adversarial_payloads_land_or_are_rejected_with_the_right_reason(
    snapshot_pipeline: Pipeline, sim: Simulator, template: Template
) -> None:
    """Vectors the chain allows or a broken indexer might send: each valid one is ingested
    exactly (also at the UInt64 edge), each invalid one is ``rejected`` with its rule and never
    reaches ``resolutions_external_ingest``."""
    ids = template.known
    accepted = {
        ids[0]: (["0", "0", "1"], "1", 2),  # three outcomes
        ids[1]: (["1", "1"], "2", -1),  # 50/50: no single winner
        ids[2]: ([str(UINT64_MAX), "0"], str(UINT64_MAX), 0),  # the largest that fits
        ids[3]: (["1", "0"], "1", 0),
    }
    rejected = {
        ids[4]: ([str(UINT256_MAX), "0"], str(UINT256_MAX), "numerators_fit_uint64"),
        ids[5]: (["1", "0"], "2", "numerator_sum_equals_denominator"),
        ids[6]: (["1"], "1", "at_least_two_outcomes"),
        ids[7]: (["-1", "2"], "1", "not an unsigned integer"),
        ids[8]: (["1", "0"], "0", "denominator_positive_uint64"),
        ids[9]: (["1", "0"], "1.0", "not an unsigned integer"),
        ids[10]: ([], "5", "at_least_two_outcomes"),
    }
    for cid, (nums, den, _) in {**accepted, **rejected}.items():
        sim.universe.set_override("0x" + cid, nums, den)

    result = fetch_and_ingest(snapshot_pipeline, "shard-00")

    assert result.success
    store = snapshot_pipeline.store
    expected = expected_payouts(sim, [c for c in template.ids if c not in rejected], template.block)
    assert ingested(store) == expected
    winners = dict(
        store.query_rows(
            "SELECT condition_id, winning_index FROM default.resolutions_external_ingest FINAL"
        )
    )
    for cid, (nums, den, winner) in accepted.items():
        assert expected[cid] == ([int(n) for n in nums], int(den))
        assert winners[cid] == winner
    states = ledger(store, template.generation)
    for cid, (_, _, rule) in rejected.items():
        assert states[cid][0] == "rejected" and rule in states[cid][1], (cid, states[cid])
    assert not set(rejected) & set(ingested(store))


# -- one snapshot per backfill ---------------------------------------------------------------------


def test_every_shard_is_pinned_to_the_snapshot_block_while_the_head_moves(
    store: ClickHouseStore,
    fast_instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    """The head advances on every request; both shards still ask for the block ``_meta`` gave
    once, rows record it, and resolutions after it are (correctly) not in this backfill."""
    with run_simulator(replace(SIM_CONFIG, advance_per_request=100_000)) as sim:
        ids = input_ids(sim, known=1_000, unknown=20)
        pipeline = fresh_pipeline(store, sim, fast_instance, ids, tmp_path, FAST, shards=2)
        pipeline.snapshot()
        snapshot = tables.current_snapshot(store)
        assert snapshot is not None
        pinned = snapshot.block_number
        assert fetch_and_ingest(pipeline, "shard-00").success
        assert fetch_and_ingest(pipeline, "shard-01").success

        requests = payout_requests(sim)
        assert len(requests) >= 2 and {r.block for r in requests} == {pinned}
        head = sim.universe.head
        assert head >= pinned + 100_000 * len(requests)
        expected = expected_payouts(sim, ids, pinned)
        later = set(expected_payouts(sim, ids, head)) - set(expected)

    assert ingested(store) == expected
    assert ingested_blocks(store) == {pinned}
    assert later and not later & set(ingested(store))  # the snapshot really was one block
    assert tables.state_counts(store, snapshot.generation) == clean_counts(expected, 1_000, 20)
