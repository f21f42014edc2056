"""The little of the Solidity ABI the stand-ins need to call the contract: 32-byte words, and
dynamic arrays (of words, or of arrays) after the static head, each addressed by its offset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

Arg: TypeAlias = "int | Sequence[Arg]"


def word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def encode(*args: Arg) -> bytes:
    """``abi.encode(args...)`` for uint256 / address / bytes32 (as ints) and arrays of them."""
    heads: list[bytes] = []
    tails: list[bytes] = []
    offset = 32 * len(args)
    for arg in args:
        if isinstance(arg, int):
            heads.append(word(arg))
            continue
        tail = word(len(arg)) + encode(*arg)
        heads.append(word(offset))
        tails.append(tail)
        offset += len(tail)
    return b"".join(heads + tails)


def call_data(selector: str, *args: Arg) -> str:
    """A transaction's ``data``: the 4-byte selector (hex) and the encoded arguments."""
    return "0x" + selector.removeprefix("0x") + encode(*args).hex()
