"""The Goldsky client's contract beyond transient faults (those are in test_client_faults.py; fixtures in this folder's conftest.py):
permanent errors fail fast with one clear message, both schema dialects land exact payouts,
adversarial payloads are rejected with the rule they break, one snapshot block per backfill,
credentials are sent and never logged, the request rate is global to the host, in-flight
requests per shard are bounded, and a client without `first` would be caught.

Why these are tested against the simulator over real HTTP (and mostly through the real assets):
each property failed silently in the original scripts, so each test reads what ended up in
ClickHouse, not only what the client returned.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from payout_assets.sources.goldsky import documents
from payout_assets.sources.goldsky.client import ClientSettings, Dialect, GoldskyClient
from payout_assets.sources.goldsky.errors import (
    BlockNotIndexedError,
    GoldskyError,
    PermanentGoldskyError,
)
from payout_assets.sources.goldsky.resource import GoldskyResource
from payout_assets.warehouse import tables
from payout_assets.warehouse.store import ClickHouseStore
from payout_assets_tests.client.support import (
    KNOWN,
    SIM_CONFIG,
    UNKNOWN,
    Template,
    assert_traffic_was_clean,
    clean_counts,
    expected_payouts,
    fetch_and_ingest,
    fetch_failure,
    ingested,
    ingested_blocks,
    input_ids,
    ledger,
    payout_requests,
    wait_for,
)
from payout_assets_tests.conftest import Pipeline, write_ids
from payout_assets_tests.worker_patches import document_without_first, patch_worker
from payout_standins.goldsky import FaultKind, Simulator, run_simulator

pytestmark = pytest.mark.integration

FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.1, "max_rps": 500.0, "timeout_s": 5.0}
UINT256_MAX = 2**256 - 1
UINT64_MAX = 2**64 - 1


def fresh_pipeline(
    store: ClickHouseStore,
    sim: Simulator,
    instance: dg.DagsterInstance,
    ids: list[str],
    tmp_path: Path,
    overrides: dict[str, Any] | None = None,
) -> Pipeline:
    """A pipeline that will take its own snapshot of ``sim`` (for tests about the snapshot)."""
    return Pipeline(
        store=store,
        endpoint=sim.url,
        instance=instance,
        ids_file=write_ids(tmp_path / "ids.txt", ids),
        goldsky_overrides=overrides,
    )


def client_for(sim: Simulator, tmp_path: Path, **settings: Any) -> GoldskyClient:
    """A client with fast backoff and its own limiter file (client-level tests only)."""
    return GoldskyClient(
        ClientSettings(
            endpoint=sim.url,
            rate_limit_db=str(tmp_path / "rate.sqlite"),
            **{**FAST, **settings},
        )
    )


def sub_ids(sim: Simulator, n: int) -> list[str]:
    """The first ``n`` universe ids, canonical (no ``0x``)."""
    return [sim.universe.condition_id(i).removeprefix("0x") for i in range(n)]


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
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The old schema end to end: decimal ``payouts`` become exact integer numerators over their
    least common denominator, ``resolutionTimestamp`` becomes ``resolved_at``, and decimals
    that are not a payout are rejected with the rule they break."""
    monkeypatch.setenv("PAYOUT_SHARDS", "1")
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
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The head advances on every request; both shards still ask for the block ``_meta`` gave
    once, rows record it, and resolutions after it are (correctly) not in this backfill."""
    monkeypatch.setenv("PAYOUT_SHARDS", "2")
    with run_simulator(replace(SIM_CONFIG, advance_per_request=100_000)) as sim:
        ids = input_ids(sim, known=1_000, unknown=20)
        pipeline = fresh_pipeline(store, sim, fast_instance, ids, tmp_path, FAST)
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


def test_has_indexing_errors_is_recorded_and_warned(
    store: ClickHouseStore,
    fast_instance: dg.DagsterInstance,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAYOUT_SHARDS", "1")
    with run_simulator(SIM_CONFIG) as sim:
        sim.faults.add(FaultKind.META_INDEXING_ERRORS, count=1, match=lambda i: "_meta" in i.fields)
        pipeline = fresh_pipeline(store, sim, fast_instance, input_ids(sim, 20, 0), tmp_path)
        result = pipeline.snapshot()

    (materialization,) = result.asset_materializations_for_node("missing_condition_ids")
    assert materialization.metadata["has_indexing_errors"].value is True
    snapshot = tables.current_snapshot(store)
    assert snapshot is not None and snapshot.has_indexing_errors
    warnings = [
        e.user_message
        for e in fast_instance.all_logs(result.run_id)
        if e.level == logging.WARNING and "hasIndexingErrors" in e.user_message
    ]
    assert len(warnings) == 1


# -- credentials -----------------------------------------------------------------------------------


def test_api_key_is_sent_as_bearer_and_never_logged(
    snapshot_pipeline: Pipeline,
    template: Template,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A wrong key fails the shard with a 401 that names the setting; the right key is sent on
    every request as ``Authorization: Bearer …``. Neither key appears in any event, run record,
    metadata or log output."""
    right, wrong = f"sk-right-{uuid.uuid4().hex}", f"sk-wrong-{uuid.uuid4().hex}"
    with run_simulator(replace(SIM_CONFIG, api_key=right)) as keyed:
        snapshot_pipeline.endpoint = keyed.url
        snapshot_pipeline.goldsky_overrides = {"api_key": wrong}
        failed = fetch_and_ingest(snapshot_pipeline, "shard-00")
        assert not failed.success
        description, _ = fetch_failure(failed)
        assert "HTTP 401" in description and "GOLDSKY_API_KEY" in description
        refused = keyed.traffic.stats()["requests"]
        assert refused <= math.ceil(len(template.ids) / 1000)  # no retry storm

        snapshot_pipeline.goldsky_overrides = {"api_key": right}
        result = fetch_and_ingest(snapshot_pipeline, "shard-00")
        assert result.success
        stats = keyed.traffic.stats()
        assert stats["with_authorization"] == stats["requests"]
        assert stats["unauthorized"] == refused
        expected = expected_payouts(keyed, template.ids, template.block)

    assert ingested(snapshot_pipeline.store) == expected
    instance = snapshot_pipeline.instance
    texts = [dg.serialize_value(run) for run in instance.get_runs()]
    for run in instance.get_runs():
        texts += [entry.to_json() for entry in instance.all_logs(run.run_id)]
    captured = capfd.readouterr()
    texts += [captured.out, captured.err]
    assert len(texts) > 4
    for text in texts:
        assert right not in text and wrong not in text
    settings = GoldskyResource(endpoint="http://127.0.0.1:1/gn", api_key=right).settings()
    assert right not in repr(settings)


def test_extra_headers_are_sent(tmp_path: Path) -> None:
    """GOLDSKY_HEADERS reaches the endpoint: an Authorization header given there authenticates."""
    with run_simulator(replace(SIM_CONFIG, api_key="sk-header")) as sim:
        resource = GoldskyResource(
            endpoint=sim.url, extra_headers=json.dumps({"Authorization": "Bearer sk-header"})
        )
        with resource.client() as client:
            assert client.meta().block_number == sim.universe.head
        assert sim.traffic.stats()["with_authorization"] == 1
        assert sim.traffic.stats()["unauthorized"] == 0


# -- rate and concurrency --------------------------------------------------------------------------

RATE_WORKER = r"""
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from payout_assets.sources.goldsky.client import ClientSettings, GoldskyClient

url, rps, n, ready, go = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
ids = sys.argv[6].split(",")
settings = ClientSettings(endpoint=url, max_rps=rps, concurrency=4, max_attempts=3,
                          backoff_initial_s=0.01, backoff_max_s=0.1, timeout_s=10.0)
with GoldskyClient(settings) as client:
    Path(ready).touch()
    for _ in range(600):  # at most 60 s for every worker to be ready
        if Path(go).exists():
            break
        time.sleep(0.1)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda k: client.fetch_payouts([ids[k % len(ids)]], None), range(n)))
    print(json.dumps({"requests": client.requests_sent, "retries": client.retries}))
"""


def test_rate_limit_is_shared_by_every_process_on_the_host(tmp_path: Path) -> None:
    """Three processes with four threads each, GOLDSKY_MAX_RPS equal to the server's limit:
    together they never exceed it, so the server never answers 429 (each alone would)."""
    limit, workers, per_worker = 20, 3, 16
    config = replace(SIM_CONFIG, rate_limit=(limit, 1.0))
    procs: list[subprocess.Popen[str]] = []
    with run_simulator(config) as sim:
        ids = ",".join(sub_ids(sim, 50))
        go = tmp_path / "go"
        try:
            for w in range(workers):
                procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-c",
                            RATE_WORKER,
                            sim.url,
                            str(limit),
                            str(per_worker),
                            str(tmp_path / f"ready-{w}"),
                            str(go),
                            ids,
                        ],
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                        # The default limiter file lives in the temp dir: keep it in this test's.
                        env={**os.environ, "TMPDIR": str(tmp_path)},
                    )
                )
            wait_for(lambda: all((tmp_path / f"ready-{w}").exists() for w in range(workers)))
            go.touch()  # all start together, so they compete for the same seconds
            outputs = [p.communicate(timeout=120) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(timeout=10)
        stats = sim.traffic.stats()

    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert json.loads(out) == {"requests": per_worker, "retries": 0}
    assert stats["requests"] == workers * per_worker
    assert stats["rate_limited"] == 0 and stats["by_status"] == {"200": workers * per_worker}
    assert stats["max_requests_per_second"] <= limit


def test_in_flight_requests_per_shard_are_bounded_by_concurrency(
    snapshot_pipeline: Pipeline, sim: Simulator, template: Template
) -> None:
    """With a slow endpoint and many small batches, at most ``concurrency`` requests of the
    shard are open at once (and more than one is, so the bound is what held it)."""
    sim.set_latency(30.0)
    snapshot_pipeline.goldsky_overrides = {"concurrency": 3, "batch_size": 100}

    result = fetch_and_ingest(snapshot_pipeline, "shard-00")

    assert result.success
    stats = assert_traffic_was_clean(sim, template.ids, template.block)
    assert 2 <= stats["max_in_flight"] <= 3
    assert stats["max_first"] == 100
    expected = expected_payouts(sim, template.ids, template.block)
    assert ingested(snapshot_pipeline.store) == expected
    assert tables.state_counts(snapshot_pipeline.store, template.generation) == clean_counts(
        expected, KNOWN, UNKNOWN
    )


# -- the original scripts' bug: no `first` ---------------------------------------------------------


def test_a_client_without_first_would_lose_rows_and_the_suite_sees_it(
    snapshot_pipeline: Pipeline,
    sim: Simulator,
    template: Template,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression guard for the bug that lost ~90% of resolutions: with ``first`` removed the
    backfill "succeeds", graph-node caps each batch at 100 rows, and the exact-set comparison
    every test here makes fails. The client itself refuses such a document at start-up."""
    patch_worker(monkeypatch, no_first=True)  # the fetch runs in the worker process

    result = fetch_and_ingest(snapshot_pipeline, "shard-00")

    assert result.success  # silently wrong: exactly why it went unnoticed
    expected = expected_payouts(sim, template.ids, template.block)
    got = ingested(snapshot_pipeline.store)
    assert got != expected  # the assertion every backfill test makes would fail
    assert got.items() <= expected.items()
    assert len(expected) - len(got) > len(expected) // 2
    requests = payout_requests(sim)
    assert all(r.rows <= 100 for r in requests)
    assert sim.traffic.stats()["collection_queries_without_first"] == len(requests)
    counts = tables.state_counts(snapshot_pipeline.store, template.generation)
    assert counts["not_found"] > UNKNOWN  # lost rows masquerade as ids the subgraph lacks

    with pytest.raises(PermanentGoldskyError, match="without `first`"):
        documents.require_first(
            "payouts_pnl", document_without_first(), documents.schema(Dialect.PNL)
        )


def test_shipped_queries_pass_the_first_guard() -> None:
    """Every document the client ships sets ``first`` on its collections (so the guard above is
    not simply refusing everything)."""
    for dialect in Dialect:
        for name in ("payouts_pnl" if dialect is Dialect.PNL else "payouts_legacy", "meta"):
            assert documents.document(name, dialect) is not None
        assert documents.document("changed_since", dialect) is not None


def test_cancelled_client_stops_before_sending(tmp_path: Path) -> None:
    """A shard that failed cancels its client: queued batches end at once, nothing is sent."""
    with run_simulator(SIM_CONFIG) as sim, client_for(sim, tmp_path) as client:
        client.cancel()
        with pytest.raises(GoldskyError, match="cancelled"):
            client.fetch_payouts(sub_ids(sim, 5), sim.universe.head)
        assert sim.traffic.stats()["requests"] == 0
