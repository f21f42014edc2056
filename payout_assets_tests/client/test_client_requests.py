"""What the Goldsky client sends and how much: indexing errors recorded, credentials and extra
headers sent and never logged, one request rate for every process on the host, bounded in-flight
requests per shard, `first` on every query (and a client without it caught), cancellation.

Against the simulator over real HTTP, reading what it received and what ended up in ClickHouse.
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
from pathlib import Path

import dagster as dg
import pytest

from payout_assets.sources.goldsky import documents
from payout_assets.sources.goldsky.client import Dialect
from payout_assets.sources.goldsky.errors import (
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
    client_for,
    fetch_and_ingest,
    fetch_failure,
    fresh_pipeline,
    input_ids,
    payout_requests,
    sub_ids,
    wait_for,
)
from payout_assets_tests.conftest import Pipeline
from payout_assets_tests.fetch_patches import document_without_first, drop_first
from payout_assets_tests.payouts import expected_payouts, ingested
from payout_standins.goldsky import FaultKind, Simulator, run_simulator

pytestmark = pytest.mark.integration


def test_has_indexing_errors_is_recorded_and_warned(
    store: ClickHouseStore,
    fast_instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
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
    drop_first(monkeypatch)

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
