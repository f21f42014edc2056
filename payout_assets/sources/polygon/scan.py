"""Reading ConditionResolution logs over a block range, as fast as the provider allows.

The range of one ``eth_getLogs`` adapts to the provider: it is halved whenever the provider
refuses a range (too many blocks or too many results) and doubled back towards ``max_range``
after a run of successes; the scan starts from the range that last worked. Calls go out in
JSON-RPC batches of consecutive ranges; the chunks come back in block order, each block exactly
once, so whoever writes them can record progress after each.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from payout_assets.sources.polygon.errors import (
    BatchRefusedError,
    MethodNotSupportedError,
    PermanentRpcError,
    RangeTooLargeError,
    RpcError,
)
from payout_assets.sources.polygon.events import (
    CHAIN_ID,
    CONDITION_RESOLUTION_TOPIC,
    ChainResolution,
    MalformedLog,
    decode,
)
from payout_assets.sources.polygon.rpc import RpcClient, result_or_raise

GROW_AFTER = 8  # successes in a row before the range doubles again


@dataclass
class RangeSizer:
    """The block range of the next ``eth_getLogs``: halve on refusal, grow back on success.

    Growth stops short of the smallest range refused in this scan, then closes in on it by
    halving the gap while the gain is worth a probe (an eighth or more): against a fixed cap
    the scan settles in a few refusals instead of probing the cap again every few calls.
    """

    ceiling: int
    current: int = 0
    streak: int = 0
    refusals: int = 0
    worked_max: int = 0
    refused_min: int = 0

    def __post_init__(self) -> None:
        self.current = min(self.ceiling, self.current or self.ceiling)

    def refused(self, tried: int) -> None:
        self.refused_min = min(self.refused_min or tried, tried)
        self.current = max(1, min(self.current, tried) // 2)
        self.streak = 0
        self.refusals += 1

    def worked(self) -> None:
        self.worked_max = max(self.worked_max, self.current)
        self.streak += 1
        if self.streak < GROW_AFTER or self.current >= self.ceiling:
            return
        self.streak = 0
        grown = min(self.ceiling, self.current * 2)
        if self.refused_min and grown >= self.refused_min:
            gap = self.refused_min - self.worked_max
            if gap * 8 < self.worked_max:
                return
            grown = self.worked_max + gap // 2
        self.current = max(self.current, grown)


@dataclass(frozen=True)
class Block:
    number: int
    hash: str
    timestamp: int


@dataclass
class Chunk:
    """Blocks ``first..last`` (inclusive) read: their resolutions, and the logs the node marked
    ``removed`` (a reorg dropped them) whose rows must go."""

    first: int
    last: int
    last_hash: str = ""
    resolutions: list[ChainResolution] = field(default_factory=list)
    removed: list[ChainResolution] = field(default_factory=list)


def _block(raw: Any, what: str) -> Block:
    if not isinstance(raw, dict) or "number" not in raw or "hash" not in raw:
        raise PermanentRpcError(f"eth_getBlockByNumber({what}) answered {str(raw)[:80]!r}")
    return Block(int(raw["number"], 16), str(raw["hash"]).lower(), int(raw["timestamp"], 16))


def block(client: RpcClient, number: int | str) -> Block:
    tag = hex(number) if isinstance(number, int) else number
    return _block(client.call("eth_getBlockByNumber", tag, False), tag)


def blocks(client: RpcClient, numbers: Sequence[int]) -> dict[int, Block]:
    """Several blocks' headers, in batches of the client's size."""
    out: dict[int, Block] = {}
    size = client.settings.calls_per_batch
    for start in range(0, len(numbers), size):
        part = numbers[start : start + size]
        answers = client.batch([("eth_getBlockByNumber", (hex(n), False)) for n in part])
        for number, answer in zip(part, answers, strict=True):
            out[number] = _block(result_or_raise(answer), hex(number))
    return out


def finalized_block(client: RpcClient) -> tuple[Block, str]:
    """The block the scan may read up to, and how it was chosen: the node's ``finalized`` tag,
    or (for a node without it) the head minus ``finality_depth`` blocks."""
    try:
        return block(client, "finalized"), "finalized tag"
    except MethodNotSupportedError:
        raise
    except RpcError:
        depth = client.settings.finality_depth
        head = int(client.call("eth_blockNumber"), 16)
        return block(client, max(0, head - depth)), f"head {head:,} - {depth} (no finalized tag)"


def check_chain(client: RpcClient, address: str) -> None:
    """Fail fast, with the fix, on the two mistakes a scan cannot survive."""
    chain_id = int(client.call("eth_chainId"), 16)
    if chain_id != CHAIN_ID:
        raise PermanentRpcError(
            f"POLYGON_RPC_URL serves chain id {chain_id}, not Polygon PoS ({CHAIN_ID}): "
            "point it at a Polygon mainnet provider"
        )
    code = client.call("eth_getCode", address, "latest")
    if not code or code == "0x":
        raise PermanentRpcError(
            f"no contract code at POLYGON_CTF_ADDRESS {address} on this chain: use "
            "ConditionalTokens' address, 0x4D97DCd97eC945f40cF65F87097ACe5EA0476045"
        )


def _logs_call(address: str, first: int, last: int) -> tuple[str, tuple[Any, ...]]:
    return (
        "eth_getLogs",
        (
            {
                "address": address,
                "topics": [CONDITION_RESOLUTION_TOPIC],
                "fromBlock": hex(first),
                "toBlock": hex(last),
            },
        ),
    )


def _decode_all(logs: Any, first: int, last: int) -> list[ChainResolution]:
    if not isinstance(logs, list):
        raise PermanentRpcError(f"eth_getLogs({first}..{last}) answered {str(logs)[:80]!r}")
    try:
        out = [decode(log) for log in logs]
    except MalformedLog as exc:
        raise PermanentRpcError(f"eth_getLogs({first}..{last}): {exc}") from None
    stray = [r.block_number for r in out if not first <= r.block_number <= last]
    if stray:
        raise PermanentRpcError(
            f"eth_getLogs({first}..{last}) answered a log of block {stray[0]}, outside the range"
        )
    return out


def scan(
    client: RpcClient,
    address: str,
    first: int,
    last: int,
    sizer: RangeSizer,
    hash_end: bool = True,
) -> Iterator[Chunk]:
    """Chunks covering ``first..last`` in block order, each block in exactly one chunk; with
    ``hash_end``, the last one carries the hash of block ``last`` (one header call).

    When the provider refuses one range of a batch, the ranges after it that it did answer are
    kept for when the scan reaches them, so no range is read twice."""
    next_block = first
    ahead: dict[int, Chunk] = {}  # answered ranges past a refused one, by first block
    while next_block <= last:
        if next_block in ahead:
            chunk = ahead.pop(next_block)
            _complete(client, [chunk], final=hash_end and chunk.last == last)
            yield chunk
            next_block = chunk.last + 1
            continue
        ranges: list[tuple[int, int]] = []
        start = next_block
        while start <= last and len(ranges) < client.settings.calls_per_batch:
            end = min(last, start + sizer.current - 1)
            if start in ahead:
                break
            end = min(end, min((a - 1 for a in ahead if a > start), default=end))
            ranges.append((start, end))
            start = end + 1
        answers = client.batch([_logs_call(address, a, b) for a, b in ranges])
        chunks: list[Chunk] = []
        refused = False
        for (a, b), answer in zip(ranges, answers, strict=True):
            if isinstance(answer, BatchRefusedError):
                widest = max(y - x + 1 for x, y in ranges)
                if widest == 1:
                    raise PermanentRpcError(f"the provider refuses even one-block ranges: {answer}")
                sizer.refused(widest)
                break  # nothing of this batch was answered
            if isinstance(answer, RangeTooLargeError):
                if a == b:
                    raise PermanentRpcError(
                        f"the provider refuses even the one-block range {a:,}: {answer}"
                    )
                if not refused:
                    sizer.refused(b - a + 1)
                refused = True
                continue
            decoded = _decode_all(result_or_raise(answer), a, b)
            chunk = Chunk(
                a,
                b,
                resolutions=[r for r in decoded if not r.removed],
                removed=[r for r in decoded if r.removed],
            )
            sizer.worked()
            if refused:
                ahead[a] = chunk
            else:
                chunks.append(chunk)
        _complete(client, chunks, final=hash_end and bool(chunks) and chunks[-1].last == last)
        for chunk in chunks:
            yield chunk
            next_block = chunk.last + 1


def _complete(client: RpcClient, chunks: list[Chunk], final: bool) -> None:
    """The hash of the scan's last block (what a later run checks for a reorg before it
    continues) and the block time of resolutions whose log lacks ``blockTimestamp`` (nodes
    before geth 1.16 leave it out), in one batch of block headers. Chunks inside the scan get
    no hash of their own: it would cost a call per range, doubling the scan's requests."""
    needed = {r.block_number for c in chunks for r in c.resolutions if r.block_timestamp is None}
    if final and chunks:
        needed.add(chunks[-1].last)
    headers = blocks(client, sorted(needed)) if needed else {}
    if final and chunks:
        chunks[-1].last_hash = headers[chunks[-1].last].hash
    for chunk in chunks:
        chunk.resolutions = [
            r
            if r.block_timestamp is not None
            else replace(r, block_timestamp=headers[r.block_number].timestamp)
            for r in chunk.resolutions
        ]
