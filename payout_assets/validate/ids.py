"""Condition id normalisation.

A condition id is a bytes32: 64 hex digits. Sources spell it in many ways (``0x`` prefix or not,
upper case, stray whitespace). We store the canonical form, 64 lowercase hex digits without
``0x``, and ask the subgraph with ``"0x" + id`` because graph-node compares ids as strings.
Anything else is kept out of every request and recorded with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"[0-9a-f]*")


@dataclass(frozen=True)
class InvalidId:
    """An input that is not a condition id, with a reason a person can act on."""

    text: str
    reason: str


def normalize_condition_id(raw: str) -> str | InvalidId:
    """``raw`` as 64 lowercase hex digits, or an :class:`InvalidId` saying why it is not one."""
    text = raw.strip()
    value = text.lower()
    if value.startswith("0x"):
        value = value[2:]
    if _HEX64.fullmatch(value):
        return value
    if not value:
        return InvalidId(text, "empty id")
    if not _HEX.fullmatch(value):
        return InvalidId(text, "not hexadecimal")
    return InvalidId(text, f"{len(value)} hex digits, a condition id has 64")


def to_subgraph_id(condition_id: str) -> str:
    """The id as the subgraph stores it (``0x`` + lowercase hex)."""
    return "0x" + condition_id


def from_subgraph_id(subgraph_id: str) -> str | InvalidId:
    """A subgraph id back to the canonical form; the subgraph always answers ``0x``-prefixed
    lowercase, so anything else is reported rather than silently fixed."""
    if not subgraph_id.startswith("0x") or subgraph_id != subgraph_id.lower():
        return InvalidId(subgraph_id, "subgraph id is not 0x-prefixed lowercase hex")
    return normalize_condition_id(subgraph_id)
