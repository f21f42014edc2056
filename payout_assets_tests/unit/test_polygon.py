"""The chain source's plain parts: log decoding, error shapes, the adaptive range, the
partitions' keys, and the JSON-RPC client and scan against a provider played by
httpx.MockTransport (batches, per-element failures, 429 with Retry-After, refusals)."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from payout_assets.backfill.chain_scan import read_ahead
from payout_assets.sources.polygon.errors import (
    MethodNotSupportedError,
    PermanentRpcError,
    RangeTooLargeError,
    TransientRpcError,
    classify_error,
)
from payout_assets.sources.polygon.events import (
    CONDITION_RESOLUTION_TOPIC,
    MalformedLog,
    decode,
)
from payout_assets.sources.polygon.rpc import RpcClient, RpcSettings
from payout_assets.sources.polygon.scan import RangeSizer, check_chain, scan
from payout_assets.warehouse.chain import BlockRange, block_ranges
from payout_standins.polygon.abi import encode

ADDRESS = "0x4D97DCd97eC945f40cF65F87097ACe5EA0476045"


def _log(block: int, payouts: list[int], index: int = 0, cid: int = 7) -> dict[str, Any]:
    return {
        "address": ADDRESS.lower(),
        "topics": [
            CONDITION_RESOLUTION_TOPIC,
            "0x" + f"{cid:064x}",
            "0x" + "0" * 24 + "ab" * 20,
            "0x" + f"{cid + 1:064x}",
        ],
        "data": "0x" + encode(len(payouts), payouts).hex(),
        "blockNumber": hex(block),
        "blockHash": "0x" + f"{block:064x}",
        "blockTimestamp": hex(1_700_000_000 + block),
        "transactionHash": "0x" + "cd" * 32,
        "logIndex": hex(index),
        "removed": False,
    }


def test_decode_keeps_uint256_numerators_exact() -> None:
    big = [2**255 + 1, 10**18, 0]
    event = decode(_log(12, big, index=3))
    assert event.numerators == tuple(big)
    assert event.denominator == sum(big)
    assert event.outcome_slot_count == 3
    assert event.condition_id == f"{7:064x}"
    assert event.oracle == "0x" + "ab" * 20
    assert (event.block_number, event.log_index, event.block_timestamp) == (12, 3, 1_700_000_012)


@pytest.mark.parametrize(
    ("mutate", "cause"),
    [
        (lambda log: log.update(topics=log["topics"][:3]), "not a ConditionResolution"),
        (lambda log: log.update(data=log["data"][:-2]), "whole 32-byte words"),
        (lambda log: log.update(data="0x" + encode(3, [1, 0]).hex()), "outcomeSlotCount 3"),
        (lambda log: log.update(blockNumber=12), "not a hex quantity"),
    ],
)
def test_decode_refuses_a_log_that_is_not_the_event(
    mutate: Callable[[dict[str, Any]], None], cause: str
) -> None:
    log = _log(1, [1, 0])
    mutate(log)
    with pytest.raises(MalformedLog, match=cause):
        decode(log)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ({"code": -32005, "message": "query returned more than 10000 results"}, RangeTooLargeError),
        ({"code": -32602, "message": "block range exceeds limit of 10000"}, RangeTooLargeError),
        ({"code": -32000, "message": "exceed maximum block range: 5000"}, RangeTooLargeError),
        ({"code": -32005, "message": "daily request limit exceeded"}, TransientRpcError),
        (
            {"code": -32601, "message": "the method eth_getLogs does not exist"},
            MethodNotSupportedError,
        ),
        ({"code": -32000, "message": "header not found"}, TransientRpcError),
    ],
)
def test_provider_errors_are_sorted_by_what_to_do(error: dict[str, Any], kind: type) -> None:
    assert type(classify_error(error, "eth_getLogs")) is kind


def test_the_range_halves_on_refusal_and_grows_back_after_successes() -> None:
    sizer = RangeSizer(ceiling=10_000)
    assert sizer.current == 10_000
    sizer.refused(10_000)
    sizer.refused(5_000)
    assert sizer.current == 2_500
    for _ in range(8):
        sizer.worked()
    assert sizer.current == 3_750  # halfway to the smallest refused range, not back onto it
    for _ in range(8):
        sizer.worked()
    assert sizer.current == 4_375
    assert RangeSizer(ceiling=10_000, current=1_250).current == 1_250  # the remembered range


def test_block_ranges_are_aligned_so_keys_never_change_as_the_chain_grows() -> None:
    ranges = block_ranges(4_023_686, 6_000_000, 1_000_000)
    assert [r.key for r in ranges] == [
        "000004023686-000004999999",
        "000005000000-000005999999",
        "000006000000-000006999999",
    ]
    assert block_ranges(4_023_686, 6_500_000, 1_000_000)[:3] == ranges
    assert BlockRange.from_key(ranges[1].key) == ranges[1]
    with pytest.raises(ValueError, match="FIRST-LAST"):
        BlockRange.from_key("shard-01")


class Provider:
    """A provider over an in-memory log list: caps ranges at ``max_range`` blocks, answers
    batches element by element, and counts what it served."""

    def __init__(self, logs: list[dict[str, Any]], head: int, max_range: int = 10_000) -> None:
        self.logs, self.head, self.max_range = logs, head, max_range
        self.served: list[tuple[int, int]] = []
        self.posts = 0
        self.script: list[httpx.Response] = []  # answers to play before the real ones
        self.chain_id = 137

    def one(self, request: dict[str, Any]) -> dict[str, Any]:
        method, params = request["method"], request["params"]
        out: dict[str, Any] = {"jsonrpc": "2.0", "id": request["id"]}
        if method == "eth_getLogs":
            first, last = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
            if last - first + 1 > self.max_range:
                out["error"] = {"code": -32602, "message": "block range exceeds limit of 500"}
                return out
            self.served.append((first, last))
            out["result"] = [
                log for log in self.logs if first <= int(log["blockNumber"], 16) <= last
            ]
        elif method == "eth_getBlockByNumber":
            number = self.head if params[0] == "finalized" else int(params[0], 16)
            out["result"] = {
                "number": hex(number),
                "hash": "0x" + f"{number:064x}",
                "timestamp": hex(1_700_000_000 + number),
            }
        elif method == "eth_chainId":
            out["result"] = hex(self.chain_id)
        elif method == "eth_getCode":
            out["result"] = "0x6080"
        else:
            out["error"] = {"code": -32601, "message": f"the method {method} does not exist"}
        return out

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.posts += 1
        if self.script:
            return self.script.pop(0)
        body = json.loads(request.content)
        return httpx.Response(200, json=[self.one(r) for r in body])


def _client(provider: Provider, **settings: Any) -> RpcClient:
    options = {"max_rps": 1000.0, "backoff_initial_s": 0.01, "max_range": 1_000, **settings}
    return RpcClient(
        RpcSettings(url="http://provider.test/rpc", rate_limit_db=None, **options),
        transport=httpx.MockTransport(provider),
    )


def test_scan_halves_the_range_on_refusal_and_reads_every_block_once() -> None:
    logs = [_log(b, [1, 0], cid=b) for b in range(0, 3_000, 97)]
    provider = Provider(logs, head=3_000, max_range=300)
    with _client(provider) as client:
        sizer = RangeSizer(ceiling=1_000)
        chunks = list(scan(client, ADDRESS, 0, 2_999, sizer))
    served = sorted(provider.served)
    assert served[0][0] == 0 and served[-1][1] == 2_999
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(served))  # no gap
    assert sum(len(c.resolutions) for c in chunks) == len(logs)
    assert [c.first for c in chunks] == [a for a, _ in served]  # in order, each range once
    assert sizer.current <= 300 and sizer.refusals <= 4
    assert len(provider.served) == len(set(provider.served))
    assert chunks[-1].last_hash == "0x" + f"{2_999:064x}"


def test_429_with_retry_after_is_retried_and_counted() -> None:
    provider = Provider([_log(5, [0, 1])], head=10)
    provider.script = [httpx.Response(429, headers={"retry-after": "0.05"}), httpx.Response(503)]
    with _client(provider) as client:
        chunks = list(scan(client, ADDRESS, 0, 9, RangeSizer(ceiling=1_000)))
        assert client.retries == 2
    assert [e.numerators for c in chunks for e in c.resolutions] == [(0, 1)]


def test_one_failed_element_of_a_batch_does_not_fail_the_others() -> None:
    provider = Provider([], head=10)
    with _client(provider) as client:
        answers = client.batch(
            [("eth_chainId", ()), ("eth_getBalance", ("0x0", "latest")), ("eth_chainId", ())]
        )
    assert answers[0] == answers[2] == "0x89"
    assert isinstance(answers[1], PermanentRpcError) and "does not support" in str(answers[1])


def test_wrong_chain_fails_fast_with_the_fix() -> None:
    provider = Provider([], head=10)
    provider.chain_id = 1
    with _client(provider) as client, pytest.raises(PermanentRpcError, match="not Polygon PoS"):
        check_chain(client, ADDRESS)


def test_read_ahead_hands_over_every_item_then_the_producers_error() -> None:
    def produce():
        yield from range(5)
        raise TransientRpcError("provider gone")

    seen: list[int] = []
    with pytest.raises(TransientRpcError, match="provider gone"):
        for item in read_ahead(produce(), depth=2):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]


def test_read_ahead_stops_its_producer_when_the_consumer_stops() -> None:
    produced: list[int] = []

    def produce():
        for i in itertools.count():
            produced.append(i)
            yield i

    for item in read_ahead(produce(), depth=2):
        if item == 3:
            break
    for _ in range(50):  # the producer notices within its 0.1 s put timeout
        if not any(t.name == "read-ahead" for t in threading.enumerate()):
            break
        time.sleep(0.1)
    assert not any(t.name == "read-ahead" for t in threading.enumerate())
    assert len(produced) <= 4 + 2 + 1  # consumed, queued, in hand
