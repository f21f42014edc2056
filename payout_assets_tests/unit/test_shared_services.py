"""The several-hosts settings are checked like every other: one line naming the cause and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from payout_assets.settings import INSTANCE_FOR_SEVERAL_HOSTS, shared_services_problems


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("DAGSTER_PG_URL", "PAYOUT_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    return tmp_path


def test_unset_means_one_machine_and_no_problem(home: Path) -> None:
    assert shared_services_problems() == []


def test_urls_of_the_wrong_kind_are_named_without_their_password(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_PG_URL", "mysql://u:hunter2@db/dagster")
    monkeypatch.setenv("PAYOUT_REDIS_URL", "http://u:hunter2@cache:6379")
    problems = shared_services_problems()
    assert len(problems) == 2
    assert problems[0].startswith("DAGSTER_PG_URL=") and "postgresql://" in problems[0]
    assert problems[1].startswith("PAYOUT_REDIS_URL=") and "redis://" in problems[1]
    assert not any("hunter2" in p for p in problems)


def test_a_postgres_url_with_a_sqlite_instance_is_refused(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql://dagster@127.0.0.1:5432/dagster")
    assert shared_services_problems() == []  # a new home gets deploy/dagster.yaml
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (problem,) = shared_services_problems()
    assert "keeps the instance in SQLite" in problem and "deploy/dagster.yaml" in problem
    (home / "dagster.yaml").write_text(INSTANCE_FOR_SEVERAL_HOSTS.read_text())
    assert shared_services_problems() == []
