"""The subgraph client against answers played by ``httpx.MockTransport``: no server, no sleeps.

The simulator tests (integration) show the same behaviour against a graph-node-like server; these
pin down what the client does with each kind of answer, in milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from payout_assets.sources.goldsky.client import ClientSettings, GoldskyClient
from payout_assets.sources.goldsky.errors import PermanentGoldskyError, TransientGoldskyError

CID_A = "a" * 64
CID_B = "b" * 64
ENDPOINT = "http://127.0.0.1:9/subgraphs/name/pnl/gn"

Handler = Callable[[httpx.Request], httpx.Response]


def client(tmp_path: Path, handler: Handler, **overrides: object) -> GoldskyClient:
    settings = ClientSettings(
        endpoint=ENDPOINT,
        max_rps=1000.0,
        max_attempts=3,
        backoff_initial_s=0.001,
        backoff_max_s=0.001,
        rate_limit_db=str(tmp_path / "rate.sqlite"),
        **overrides,  # type: ignore[arg-type]
    )
    return GoldskyClient(settings, transport=httpx.MockTransport(handler))


def row(cid: str, numerators: list[int]) -> dict[str, object]:
    return {
        "id": "0x" + cid,
        "payoutNumerators": numerators,
        "payoutDenominator": sum(numerators),
        "resolutionTimestamp": "1700000000",
    }


def answer(*rows: dict[str, object]) -> httpx.Response:
    return httpx.Response(200, json={"data": {"conditions": list(rows)}})


def test_a_batch_asks_for_exactly_its_ids_and_keeps_integers_exact(tmp_path: Path) -> None:
    seen: list[dict[str, object]] = []
    big = 10**30  # beyond a float's exact range: must arrive as the same integer

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content)["variables"])
        return answer(row(CID_A, [big, 0]))

    with client(tmp_path, handler) as c:
        rows = c.fetch_payouts([CID_A, CID_B], block=123)

    assert seen == [{"ids": ["0x" + CID_A, "0x" + CID_B], "first": 2, "block": {"number": 123}}]
    assert [(r.condition_id, r.payout_numerators, r.payout_denominator) for r in rows] == [
        (CID_A, (str(big), "0"), str(big))
    ]


def test_a_429_is_retried_after_its_retry_after_and_counted(tmp_path: Path) -> None:
    answers = iter([httpx.Response(429, headers={"retry-after": "0"}), answer()])
    with client(tmp_path, lambda _: next(answers)) as c:
        assert c.fetch_payouts([CID_A], block=None) == []
        assert (c.requests_sent, c.retries) == (2, 1)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param([row(CID_B, [1, 0])], id="id-not-asked"),
        pytest.param([row(CID_A, [1, 0]), row(CID_A, [1, 0])], id="id-twice"),
    ],
)
def test_an_answer_that_cannot_be_trusted_is_retried_then_fails_naming_the_batch(
    tmp_path: Path, bad: list[dict[str, object]]
) -> None:
    with client(tmp_path, lambda _: answer(*bad)) as c:
        with pytest.raises(TransientGoldskyError, match="gave up after 3 attempts") as err:
            c.fetch_payouts([CID_A], block=None)
        assert c.requests_sent == 3
    assert err.value.condition_ids == (CID_A,)


def test_a_schema_error_fails_at_once_with_the_fix(tmp_path: Path) -> None:
    refused = {"errors": [{"message": "Type `Query` has no field `conditions`"}]}
    with client(tmp_path, lambda _: httpx.Response(200, json=refused)) as c:
        with pytest.raises(PermanentGoldskyError, match="no field `conditions`"):
            c.fetch_payouts([CID_A], block=None)
        assert c.requests_sent == 1


@pytest.mark.parametrize(
    ("api_key", "expected"), [("k-123", "key for this endpoint"), (None, "set GOLDSKY_API_KEY")]
)
def test_refused_credentials_say_whether_a_key_was_sent_and_never_show_it(
    tmp_path: Path, api_key: str | None, expected: str
) -> None:
    sent: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("authorization"))
        return httpx.Response(401, text="unauthorised")

    with (
        client(tmp_path, handler, api_key=api_key) as c,
        pytest.raises(PermanentGoldskyError, match=expected) as err,
    ):
        c.fetch_payouts([CID_A], block=None)
    assert sent == [f"Bearer {api_key}" if api_key else None]
    assert "k-123" not in str(err.value)


def test_changed_since_pages_by_id_cursor_until_a_short_page(tmp_path: Path) -> None:
    ids = [f"{i:064x}" for i in range(1, 6)]
    afters: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        variables = json.loads(request.content)["variables"]
        afters.append(variables["after"])
        page = [i for i in ids if "0x" + i > variables["after"]][: variables["first"]]
        return httpx.Response(200, json={"data": {"conditions": [{"id": "0x" + i} for i in page]}})

    with client(tmp_path, handler) as c:
        assert list(c.changed_since(since_block=1, block=None, page_size=2)) == ids
    assert afters == ["0x", "0x" + ids[1], "0x" + ids[3]]
