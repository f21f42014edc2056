"""ConditionResolution, the one on-chain fact every payout comes from, decoded exactly.

``event ConditionResolution(bytes32 indexed conditionId, address indexed oracle,
bytes32 indexed questionId, uint outcomeSlotCount, uint[] payoutNumerators)``: the three ids are
topics, the data is ABI ``(uint256, uint256[])``. The denominator is the sum of the numerators
(``reportPayouts`` sets it so, once per condition).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CTF_ADDRESS = "0x4D97DCd97eC945f40cF65F87097ACe5EA0476045"
CTF_START_BLOCK = 4_023_686
CHAIN_ID = 137
CONDITION_RESOLUTION_TOPIC = "0xb44d84d3289691f71497564b85d4233648d9dbae8cbdbb4329f301c3a0185894"
WORD = 64  # hex digits in a 32-byte ABI word


class MalformedLog(ValueError):
    """A log that does not decode as ConditionResolution: the node or the address is wrong."""


@dataclass(frozen=True)
class ChainResolution:
    condition_id: str  # 64 lowercase hex, no 0x: the ids' canonical form
    oracle: str  # 0x + 40 lowercase hex
    question_id: str  # 64 lowercase hex
    outcome_slot_count: int
    numerators: tuple[int, ...]  # uint256, exact
    block_number: int
    block_hash: str
    block_timestamp: int | None  # seconds; None when the node leaves it out of logs
    tx_hash: str
    log_index: int
    removed: bool

    @property
    def denominator(self) -> int:
        return sum(self.numerators)


def _words(data: str) -> list[int]:
    body = data.removeprefix("0x")
    if len(body) % WORD:
        raise MalformedLog(f"log data is not whole 32-byte words ({len(body) // 2} bytes)")
    return [int(body[i : i + WORD], 16) for i in range(0, len(body), WORD)]


def _quantity(value: Any, field: str) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise MalformedLog(f"log field {field} is not a hex quantity: {value!r}")
    return int(value, 16)


def decode(log: Mapping[str, Any]) -> ChainResolution:
    """One ``eth_getLogs`` entry as a resolution; raises :class:`MalformedLog` with the cause."""
    topics = log.get("topics") or []
    if len(topics) != 4 or str(topics[0]).lower() != CONDITION_RESOLUTION_TOPIC:
        raise MalformedLog(f"not a ConditionResolution log: topics {topics!r}")
    words = _words(str(log.get("data", "")))
    # (uint256 outcomeSlotCount, uint256[] payoutNumerators): head of 2 words, then the array
    if len(words) < 3 or words[1] != 2 * 32:
        raise MalformedLog(f"log data does not hold (uint256, uint256[]): {len(words)} words")
    length = words[2]
    if len(words) != 3 + length:
        raise MalformedLog(f"log data holds {len(words) - 3} numerators, its length says {length}")
    numerators = tuple(words[3:])
    if words[0] != length:
        raise MalformedLog(f"outcomeSlotCount {words[0]} != {length} payout numerators")
    timestamp = log.get("blockTimestamp")
    return ChainResolution(
        condition_id=str(topics[1])[2:].lower(),
        oracle="0x" + str(topics[2])[-40:].lower(),
        question_id=str(topics[3])[2:].lower(),
        outcome_slot_count=words[0],
        numerators=numerators,
        block_number=_quantity(log.get("blockNumber"), "blockNumber"),
        block_hash=str(log.get("blockHash", "")).lower(),
        block_timestamp=_quantity(timestamp, "blockTimestamp") if timestamp else None,
        tx_hash=str(log.get("transactionHash", "")).lower(),
        log_index=_quantity(log.get("logIndex"), "logIndex"),
        removed=bool(log.get("removed", False)),
    )
