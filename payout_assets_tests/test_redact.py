"""Secrets in URLs never reach a log: one redaction (``payout_assets.redact``) for every URL
whatever its scheme, and a mistyped endpoint's password absent from every event of a run."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster._serdes import serialize_value

from payout_assets.defs import assets
from payout_assets.preflight.result import CheckResult, scrub
from payout_assets.redact import redact
from payout_assets.warehouse.store import ClickHouseStore, StoreError
from payout_assets_tests.conftest import Pipeline, write_ids
from payout_standins.goldsky import Simulator

pytestmark = pytest.mark.integration

PASSWORD = "pw-Zq81-never-logged"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:{pw}@host/db", "https://user:***@host/db"),
        ("htps://user:{pw}@host/x", "htps://user:***@host/x"),
        ("clickhose://default:{pw}@127.0.0.1:8123/db", "clickhose://default:***@127.0.0.1:8123/db"),
        ("clickhouse+http://u:{pw}@h:8123", "clickhouse+http://u:***@h:8123"),
        ("http:/u:{pw}@h/p", "http:/u:***@h/p"),
        ("http:u:{pw}@h", "http:u:***@h"),
        ("//u:{pw}@h", "//u:***@h"),
        ("u:{pw}@h:8123", "u:***@h:8123"),
        ("HTTPS://U:{pw}@H", "HTTPS://U:***@H"),
        ("https://u:{pw}@x:y@h/p", "https://u:***@h/p"),  # a password holding '@' and ':'
        ("https://{pw}@h/gql", "https://***@h/gql"),  # a key as the user is the credential
        ("got 'ht tp://u:{pw}@h' instead", "got 'ht tp://u:***@h' instead"),
    ],
)
def test_redact_removes_userinfo_whatever_the_scheme(url: str, shown: str) -> None:
    text = url.format(pw=PASSWORD)
    assert redact(text) == shown
    assert redact(redact(text)) == shown
    assert redact(text) == shown
    (result,) = scrub([CheckResult("x", "fail", text, text)], [])  # type: ignore[arg-type]
    assert PASSWORD not in result.detail + result.fix


@pytest.mark.parametrize(
    "text",
    ["chdb:///var/lib/store", "https://host/path?q=1", "mail me: a@b.com", "error: foo@bar", ""],
)
def test_redact_leaves_text_without_credentials_alone(text: str) -> None:
    assert redact(text) == text


def test_redact_removes_given_secrets_anywhere() -> None:
    assert redact(f"Authorization: Bearer {PASSWORD}.", [PASSWORD]) == "Authorization: Bearer ***."


def test_a_dsn_with_an_unknown_scheme_is_refused_without_its_password() -> None:
    with pytest.raises(StoreError) as raised:
        ClickHouseStore(f"clickhose://default:{PASSWORD}@127.0.0.1:8123/db")
    assert PASSWORD not in str(raised.value)
    assert "clickhose://default:***@127.0.0.1:8123/db" in str(raised.value)


def test_a_mistyped_endpoint_scheme_keeps_its_password_out_of_every_event(
    pipeline: Pipeline, sim: Simulator, tmp_path: Path
) -> None:
    """The snapshot is taken against the good endpoint, then the snapshot and a shard run against
    the same endpoint with a mistyped scheme and a password: both fail, naming the redacted URL,
    and no event of any run, nor the ledger, holds the password."""
    pipeline.ids_file = write_ids(
        tmp_path / "ids.txt", [sim.universe.condition_id(i).removeprefix("0x") for i in range(50)]
    )
    pipeline.snapshot()
    assert pipeline.endpoint.startswith("http://")
    pipeline.endpoint = pipeline.endpoint.replace("http://", f"htps://backfill:{PASSWORD}@", 1)

    shard = pipeline.shard("shard-00")
    snapshot = pipeline.materialize([assets.missing_condition_ids])

    assert not shard.success
    failure = next(e for e in shard.all_events if e.is_step_failure)
    assert "htps://backfill:***@127.0.0.1" in str(failure.event_specific_data), failure
    assert not snapshot.success
    runs = pipeline.instance.get_runs()
    assert len(runs) == 3
    for run in runs:
        assert PASSWORD not in serialize_value(run)
        for entry in pipeline.instance.all_logs(run.run_id):
            assert PASSWORD not in serialize_value(entry), entry.user_message
    reasons = pipeline.store.query_rows("SELECT reason FROM payout_backfill.ledger_latest")
    assert reasons and not [r for (r,) in reasons if PASSWORD in r]
