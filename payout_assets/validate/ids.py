"""Condition id normalisation.

A condition id is a bytes32: 64 hex digits. Sources spell it in many ways (``0x`` prefix or not,
upper case, stray whitespace). We store the canonical form, 64 lowercase hex digits without
``0x``, and ask the subgraph with ``"0x" + id`` because graph-node compares ids as strings.
Anything else is kept out of every request and recorded with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

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


def is_canonical(condition_id: str) -> bool:
    """Whether the id is already in the one form stored (64 lowercase hex, no ``0x``): two
    spellings of one condition would be two keys of every table, hence two payouts."""
    return bool(_HEX64.fullmatch(condition_id))


def to_subgraph_id(condition_id: str) -> str:
    """The id as the subgraph stores it (``0x`` + lowercase hex)."""
    return "0x" + condition_id


def from_subgraph_id(subgraph_id: str) -> str | InvalidId:
    """A subgraph id back to the canonical form; the subgraph always answers ``0x``-prefixed
    lowercase, so anything else is reported rather than silently fixed."""
    if not subgraph_id.startswith("0x") or subgraph_id != subgraph_id.lower():
        return InvalidId(subgraph_id, "subgraph id is not 0x-prefixed lowercase hex")
    return normalize_condition_id(subgraph_id)


MAX_LINE_BYTES = 1024  # a condition id with 0x is 66 characters; the rest is slack for spacing
READ_CHUNK_BYTES = 64 * 1024
SHOWN_CHARS = 80  # what the ledger keeps of an overlong line


def iter_id_lines(
    stream: BinaryIO, max_bytes: int = MAX_LINE_BYTES, chunk_bytes: int = READ_CHUNK_BYTES
) -> Iterator[str | InvalidId]:
    """The non-blank lines of an ids file (without their line ending), or an :class:`InvalidId`
    for each line longer than ``max_bytes``, holding only its first characters.

    The file is read in chunks of ``chunk_bytes`` and at most ``max_bytes`` of a line are ever
    held: a file is input from outside, and one line of hundreds of megabytes would otherwise
    be read, stored and normalised whole.
    """
    kept = bytearray()  # the current line, up to max_bytes + 1 bytes
    length = 0  # the current line's full length in bytes
    while chunk := stream.read(chunk_bytes):
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\n", start)
            stop = len(chunk) if end < 0 else end
            if len(kept) <= max_bytes:
                kept += chunk[start : min(stop, start + max_bytes + 1 - len(kept))]
            length += stop - start
            if end < 0:
                break
            if line := _finish_line(kept, length, max_bytes):
                yield line
            kept, length, start = bytearray(), 0, end + 1
    if line := _finish_line(kept, length, max_bytes):
        yield line


def _finish_line(kept: bytearray, length: int, max_bytes: int) -> str | InvalidId | None:
    """One complete line: its text, an :class:`InvalidId` if it was too long, ``None`` if
    blank."""
    if kept.endswith(b"\r") and length <= max_bytes + 1:
        length -= 1
        del kept[-1:]
    text = kept.decode("utf-8", errors="replace")
    if length > max_bytes:
        shown = text.strip()[:SHOWN_CHARS] + "…"
        return InvalidId(shown, f"line longer than {max_bytes} bytes ({length:,} bytes)")
    return text if text.strip() else None
