"""Shared fixtures: a real embedded ClickHouse store per test, the simulator over real HTTP,
and helpers that materialise the real assets in process (fast) against both."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from hypothesis import settings

from payout_assets.defs import assets, checks, polygon
from payout_assets.defs.partitions import shard_partitions, shard_partitions_def
from payout_assets.sources.goldsky.resource import GoldskyResource
from payout_assets.sources.ids import IdSourceResource
from payout_assets.sources.polygon.resource import PolygonResource
from payout_assets.warehouse import tables
from payout_assets.warehouse.resource import ClickHouseResource
from payout_assets.warehouse.store import ClickHouseStore
from payout_standins.goldsky import Simulator, SimulatorConfig, run_simulator

# The property tests time the libraries they exercise (pandera, Fraction), not this project's
# code: a per-example deadline only measures how loaded the machine is.
settings.register_profile("payout", deadline=None)
settings.load_profile("payout")

# default.resolutions_external_ingest's columns, for tests that write rows as another writer would
INGEST_COLUMNS = [
    "condition_id",
    "payout_numerators",
    "payout_denominator",
    "winning_index",
    "resolved_at",
    "source",
    "block_number",
    "fetched_at",
    "run_id",
    "version",
]

ALL_CHECKS = [
    polygon.scan_covers_every_block_once,
    checks.vw_resolutions_truth_checks,
    checks.missing_condition_ids_ledger,
]
ALL_ASSETS = [
    polygon.polygon_condition_resolutions,
    assets.missing_condition_ids,
    assets.goldsky_payouts,
    assets.resolutions_external_ingest,
    assets.vw_resolutions_truth,
]


# The layers in the order the suite runs them: the longest tests first, so that under xdist no
# worker is left to finish a two-minute UI test alone after the other has run out of work.
LAYER_ORDER = ("ui", "e2e", "integration")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def layer(item: pytest.Item) -> int:
        marks = {m.name for m in item.iter_markers()}
        return next((i for i, name in enumerate(LAYER_ORDER) if name in marks), len(LAYER_ORDER))

    items.sort(key=layer)  # stable: within a layer, the files' own order


@pytest.fixture(autouse=True)
def _no_defs_state_storage_from_another_test() -> Iterator[None]:
    """Each test starts with no current DefsStateStorage. Dagster keeps the storage of the last
    instance entered in a context variable; one a previous test left behind (its instance gone)
    makes loading definitions fail with "Attempted to resolve undefined DagsterInstance
    weakref", depending on which test ran before in the same process (seen under xdist)."""
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield


@pytest.fixture
def store(tmp_path: Path) -> ClickHouseStore:
    s = ClickHouseStore(f"chdb://{tmp_path / 'clickhouse'}")
    tables.create_source_tables(s)
    return s


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with run_simulator(SimulatorConfig(size=5_000, seed=7)) as simulator:
        yield simulator


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    (tmp_path / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as inst:
        yield inst


@dataclass
class Pipeline:
    """The real assets and checks, materialised in process against one store and endpoint."""

    store: ClickHouseStore
    endpoint: str
    instance: dg.DagsterInstance
    ids_file: Path | None = None
    goldsky_overrides: dict[str, Any] | None = None
    polygon_url: str = "http://127.0.0.1:9/unused"  # tests of the chain source set their node
    polygon_overrides: dict[str, Any] | None = None
    shards: int | None = None  # None: the code location's shards (PAYOUT_SHARDS at import)

    def assets(self) -> list[dg.AssetsDefinition]:
        """The assets, with ``shards`` partitions when the test asks for a count."""
        if self.shards is None:
            return list(ALL_ASSETS)
        shard_assets = assets.shard_assets(self.shard_partitions())
        by_key = {a.key: a for a in shard_assets}
        return [by_key.get(a.key, a) for a in ALL_ASSETS]

    def definitions(self) -> list[Any]:
        """The assets and their checks (the shard assets' own, partitioned alike)."""
        return [*self.assets(), *ALL_CHECKS]

    def shard_partitions(self) -> dg.StaticPartitionsDefinition:
        return shard_partitions if self.shards is None else shard_partitions_def(self.shards)

    def shard_keys(self) -> list[str]:
        return list(self.shard_partitions().get_partition_keys())

    def resources(self) -> dict[str, Any]:
        goldsky = {
            "endpoint": self.endpoint,
            "max_rps": 500.0,
            "backoff_initial_s": 0.01,
            "backoff_max_s": 0.2,
            "timeout_s": 5.0,
            **(self.goldsky_overrides or {}),
        }
        return {
            "clickhouse": ClickHouseResource(dsn=self.store.dsn),
            "goldsky": GoldskyResource(**goldsky),
            "polygon": PolygonResource(
                rpc_url=self.polygon_url,
                start_block=0,
                max_rps=500.0,
                backoff_initial_s=0.01,
                **(self.polygon_overrides or {}),
            ),
            "id_source": IdSourceResource(ids_file=str(self.ids_file) if self.ids_file else None),
        }

    def materialize(
        self, selection: list[Any], partition: str | None = None, raise_on_error: bool = False
    ) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            self.definitions(),
            selection=selection,
            partition_key=partition,
            resources=self.resources(),
            instance=self.instance,
            raise_on_error=raise_on_error,
        )

    def snapshot(self) -> dg.ExecuteInProcessResult:
        return self.materialize([assets.missing_condition_ids], raise_on_error=True)

    def shard(self, key: str) -> dg.ExecuteInProcessResult:
        return self.materialize(
            [assets.goldsky_payouts, assets.resolutions_external_ingest], partition=key
        )

    def scan(self, *keys: str) -> dg.ExecuteInProcessResult:
        """polygon_condition_resolutions for the given block ranges, as one run."""
        return dg.materialize(
            self.definitions(),
            selection=[polygon.polygon_condition_resolutions],
            tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            },
            resources=self.resources(),
            instance=self.instance,
            raise_on_error=False,
        )

    def view(self) -> dg.ExecuteInProcessResult:
        return self.materialize([assets.vw_resolutions_truth], raise_on_error=True)

    def backfill(self) -> list[dg.ExecuteInProcessResult]:
        self.snapshot()
        results = [self.shard(k) for k in self.shard_keys()]
        assert all(r.success for r in results), [r for r in results if not r.success]
        self.view()
        return results


@pytest.fixture
def pipeline(store: ClickHouseStore, sim: Simulator, instance: dg.DagsterInstance) -> Pipeline:
    return Pipeline(store=store, endpoint=sim.url, instance=instance)


def write_ids(path: Path, ids: list[str]) -> Path:
    path.write_text("\n".join(ids) + "\n", encoding="utf-8")
    return path


def check_results(
    result: dg.ExecuteInProcessResult,
) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }


def settled_stats(sim: Simulator, quiet_s: float = 0.0, timeout_s: float = 60.0) -> dict[str, Any]:
    """Traffic statistics once every request the simulator received has been logged and, for
    ``quiet_s``, no new one has arrived (bounded by ``timeout_s``).

    Why wait: a request a client gave up on (a slow answer past its timeout), or one a killed
    process had already sent, is logged only when the simulator finishes it, after the client
    has moved on; counting before then charges it to whatever runs next.
    """
    seen, since = -1, time.monotonic()
    for _ in range(int(timeout_s / 0.05)):
        stats = sim.traffic.stats()
        if stats["in_flight"] or stats["requests"] != seen:
            seen, since = stats["requests"], time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return stats
        time.sleep(0.05)
    raise AssertionError(f"the simulator was still answering requests after {timeout_s}s")
