"""The shared services of a several-hosts deployment, real and local: PostgreSQL 15 and
redis-server from Debian, started once per test process on free ports and stopped after it
(``payout_standins.services``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg2
import pytest

from payout_standins import services


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    with services.postgres() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with services.redis() as url:
        yield url


@pytest.fixture
def pg_url(postgres_server: str) -> str:
    """A new, empty database on the session's server: one instance per test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(postgres_server)
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    conn.close()
    return postgres_server.rsplit("/", 1)[0] + f"/{name}"
