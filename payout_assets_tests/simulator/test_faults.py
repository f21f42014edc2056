"""The simulator's fault injection, traffic log and admin endpoints, over real HTTP on 127.0.0.1:
every fault does exactly what it says, so the client tests that use them test the client."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import httpx
import pytest

from payout_assets_tests.simulator.support import (
    ROOT,
    by_ids,
    messages,
    post,
)
from payout_standins.goldsky import (
    ALLOWANCE_MESSAGE,
    OVERLOADED_MESSAGE,
    Simulator,
    run_simulator,
)

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------- faults
def test_http_429_with_and_without_retry_after(client: httpx.Client, sim: Simulator) -> None:
    sim.faults.add("http_429", count=1, retry_after=2)
    sim.faults.add("http_429", count=1)
    first = post(client, sim, "{ _meta { deployment } }")
    assert first.status_code == 429 and first.headers["Retry-After"] == "2"
    second = post(client, sim, "{ _meta { deployment } }")
    assert second.status_code == 429 and "Retry-After" not in second.headers
    assert post(client, sim, "{ _meta { deployment } }").status_code == 200
    assert sim.stats()["faults"] == {"http_429": 2}


@pytest.mark.parametrize("status", [200, 429, 403])
def test_allowance_message(client: httpx.Client, sim: Simulator, status: int) -> None:
    sim.faults.add("allowance", count=1, status=status)
    r = post(client, sim, "{ _meta { deployment } }")
    assert r.status_code == status and r.text == ALLOWANCE_MESSAGE


@pytest.mark.parametrize("status", [502, 503])
def test_gateway_html_pages(client: httpx.Client, sim: Simulator, status: int) -> None:
    sim.faults.add("html_error", count=1, status=status)
    r = post(client, sim, "{ _meta { deployment } }")
    assert r.status_code == status
    assert r.headers["Content-Type"].startswith("text/html") and "<html>" in r.text


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("indexing_error", "indexing_error"),
        ("timeout", "Query timed out"),
        ("overloaded", OVERLOADED_MESSAGE),
    ],
)
def test_graph_node_errors_in_http_200(
    client: httpx.Client, sim: Simulator, kind: str, message: str
) -> None:
    sim.faults.add(kind, count=1)
    r = post(client, sim, "{ conditions { id } }")
    assert r.status_code == 200 and r.json() == {"errors": [{"message": message}]}


def test_partial_data_with_errors(client: httpx.Client, sim: Simulator) -> None:
    sim.faults.add("partial", count=1)
    ids = list(sim.universe.ids(0, 10))
    body = by_ids(client, sim, ids, first=10)
    assert len(body["data"]["conditions"]) == 5
    assert messages(body) == ["indexing_error"]
    assert sim.stats()["ids_served"] == 0  # a faulted answer never counts as served


def test_slow_answer(client: httpx.Client, sim: Simulator) -> None:
    sim.faults.add("slow", count=1, delay_s=1.0)
    with pytest.raises(httpx.ReadTimeout):
        post(client, sim, "{ _meta { deployment } }", timeout=0.2)
    assert post(client, sim, "{ _meta { deployment } }").status_code == 200


@pytest.mark.parametrize("reset", [False, True])
def test_dropped_connection(client: httpx.Client, sim: Simulator, reset: bool) -> None:
    sim.faults.add("drop", count=1, reset=reset)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        post(client, sim, "{ _meta { deployment } }")
    assert post(client, sim, "{ _meta { deployment } }").status_code == 200
    record = sim.traffic.records()[0]
    assert record.fault == "drop" and record.status is None


def test_truncated_json(client: httpx.Client, sim: Simulator) -> None:
    sim.faults.add("truncate", count=1)
    r = post(client, sim, "{ conditions(first: 20) { id } }")
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.text)
    sim.faults.add("truncate", count=1, mode="connection")
    with pytest.raises(httpx.RemoteProtocolError):
        post(client, sim, "{ conditions(first: 20) { id } }")


def test_duplicate_and_unrequested_rows(client: httpx.Client, sim: Simulator) -> None:
    ids = list(sim.universe.ids(100, 110))
    sim.faults.add("duplicate_rows", count=1)
    rows = by_ids(client, sim, ids, first=50)["data"]["conditions"]
    returned = [r["id"] for r in rows]
    assert len(returned) == 11 and len(set(returned)) == 10

    sim.faults.add("unrequested_rows", count=1)
    rows = by_ids(client, sim, ids, first=50)["data"]["conditions"]
    extra = [r for r in rows if r["id"] not in ids]
    assert len(rows) == 11 and len(extra) == 1
    assert sim.universe.is_known(extra[0]["id"])
    assert set(extra[0]) == {"id", "payoutNumerators", "payoutDenominator"}


def test_meta_has_indexing_errors(client: httpx.Client, sim: Simulator) -> None:
    sim.faults.add("meta_indexing_errors", count=1)
    q = "{ _meta { hasIndexingErrors } }"
    assert post(client, sim, q).json()["data"]["_meta"]["hasIndexingErrors"] is True
    assert post(client, sim, q).json()["data"]["_meta"]["hasIndexingErrors"] is False


def test_fault_by_rate_and_by_predicate(client: httpx.Client, sim: Simulator) -> None:
    rule = sim.faults.add("timeout", probability=0.5)
    statuses = ["errors" in post(client, sim, "{ _meta { deployment } }").json() for _ in range(40)]
    assert 0 < sum(statuses) < 40 and rule.fired == sum(statuses)
    sim.faults.clear()

    target = sim.universe.condition_id(42)
    sim.faults.add("indexing_error", match_ids=frozenset({target}))
    sim.faults.add("overloaded", match=lambda info: info.first == 7)
    assert messages(by_ids(client, sim, [target, sim.universe.condition_id(1)], first=5)) == [
        "indexing_error"
    ]
    assert "errors" not in by_ids(client, sim, [sim.universe.condition_id(1)], first=5)
    assert messages(by_ids(client, sim, [sim.universe.condition_id(1)], first=7)) == [
        OVERLOADED_MESSAGE
    ]


def test_server_side_rate_limiter(client: httpx.Client) -> None:
    with run_simulator(size=10, rate_limit=(5, 60.0)) as sim:
        codes = [post(client, sim, "{ _meta { deployment } }").status_code for _ in range(7)]
        assert codes == [200] * 5 + [429] * 2
        limited = post(client, sim, "{ _meta { deployment } }")
        assert limited.text == ALLOWANCE_MESSAGE
        stats = sim.stats()
        assert stats["rate_limited"] == 3 and stats["max_requests_per_second"] >= 5


# --------------------------------------------------------------------------- traffic + admin
def test_traffic_counts_distinct_ids_and_max_first(client: httpx.Client, sim: Simulator) -> None:
    u = sim.universe
    by_ids(client, sim, list(u.ids(0, 300)), first=300)
    by_ids(client, sim, list(u.ids(200, 400)), first=250)  # 100 ids fetched twice
    by_ids(client, sim, [u.unknown_id(1), u.unknown_id(1)], first=5)
    stats = sim.stats()
    assert stats["ids_requested"] == 502
    assert stats["ids_requested_distinct"] == 401
    assert stats["ids_served_repeated"] == 101
    assert stats["max_first"] == 300 and stats["max_ids_per_request"] == 300
    last = sim.traffic.records(1)[0]
    assert (last.ids, last.first, last.fields, last.operation) == (2, 5, ["conditions"], "ByIds")


def test_admin_endpoints(client: httpx.Client, sim: Simulator) -> None:
    u = sim.universe
    admin = sim.admin_url
    rules = client.post(
        admin("faults"),
        json=[
            {"kind": "http_429", "count": 1, "retry_after": 3},
            {
                "kind": "graphql_error",
                "message": "boom",
                "match": {"id_in_contains": [u.condition_id(9)]},
            },
        ],
    ).json()["rules"]
    assert [r["kind"] for r in rules] == ["http_429", "graphql_error"]
    assert client.post(admin("faults"), json={"kind": "nope"}).status_code == 400
    assert client.post(admin("faults"), json={"kind": "drop", "bogus": 1}).status_code == 400
    assert post(client, sim, "{ _meta { deployment } }").headers["Retry-After"] == "3"
    assert messages(by_ids(client, sim, [u.condition_id(9)], first=1)) == ["boom"]
    assert len(client.get(admin("faults")).json()["rules"]) == 1
    assert client.delete(admin("faults")).json() == {"rules": []}

    overrides = [
        {"id": u.condition_id(9), "numerators": ["7", "3"], "denominator": "10"},
        {"id": u.condition_id(8), "present": False},
    ]
    assert client.post(admin("overrides"), json=overrides).json() == {"overrides": 2}
    rows = by_ids(client, sim, [u.condition_id(8), u.condition_id(9)], first=5)["data"]
    assert rows["conditions"] == [
        {"id": u.condition_id(9), "payoutNumerators": ["7", "3"], "payoutDenominator": "10"}
    ]
    client.delete(admin("overrides"))
    assert len(by_ids(client, sim, [u.condition_id(8)], first=5)["data"]["conditions"]) == 1

    assert client.post(admin("head"), json={"head_block": u.head + 5}).json()["head_block"] == (
        u.head
    )
    client.post(admin("rate_limit"), json={"requests": 1, "window_s": 60})
    assert post(client, sim, "{ _meta { deployment } }").status_code == 200
    assert post(client, sim, "{ _meta { deployment } }").status_code == 429
    client.post(admin("rate_limit"), json={"requests": None})
    latency = client.post(admin("latency"), json={"latency_ms": 1, "jitter_ms": 1}).json()
    assert latency == {"latency_ms": 1.0, "jitter_ms": 1.0}

    stats = client.get(admin("stats")).json()
    assert stats["requests"] == sim.stats()["requests"] > 0
    recent = client.get(admin("requests"), params={"limit": 2}).json()["requests"]
    assert len(recent) == 2 and recent[-1]["status"] == 429
    assert client.post(admin("reset")).json() == {"reset": True}
    assert client.get(admin("stats")).json()["requests"] == 0
    assert client.get(admin("nope")).status_code == 404


def test_serve_forever_prints_url_and_stops_on_sigterm(client: httpx.Client) -> None:
    code = (
        "from payout_standins.goldsky import SimulatorConfig, serve_forever; "
        "serve_forever(SimulatorConfig(size=50, seed=1))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/gn")
        r = client.post(url, json={"query": "{ conditions(first: 1000) { id } }"})
        assert len(r.json()["data"]["conditions"]) == 50
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
