"""Fixtures of the client tests: the template snapshot, a simulator of the same universe with a
fresh fault plan and traffic log (this folder's ``sim``, not the suite's), an in-memory Dagster
instance and a one-shard pipeline that starts from a copy of the template."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from payout_assets_tests.client.support import SIM_CONFIG, Template, copy_template, make_template
from payout_assets_tests.conftest import Pipeline
from payout_standins.goldsky import Simulator, run_simulator


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return make_template(tmp_path_factory.mktemp("template"))


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """The template's universe (same seed, same head), with a fresh fault plan and traffic log."""
    with run_simulator(SIM_CONFIG) as simulator:
        yield simulator


@pytest.fixture
def fast_instance() -> Iterator[dg.DagsterInstance]:
    """An in-memory Dagster instance: the runs' events are all these tests read from it."""
    instance = dg.DagsterInstance.ephemeral()
    try:
        yield instance
    finally:
        instance.dispose()


@pytest.fixture
def snapshot_pipeline(
    template: Template,
    sim: Simulator,
    fast_instance: dg.DagsterInstance,
    tmp_path: Path,
) -> Pipeline:
    """A pipeline whose store already holds the template's snapshot, against ``sim``."""
    return Pipeline(
        store=copy_template(template, tmp_path),
        endpoint=sim.url,
        instance=fast_instance,
        shards=1,
    )
