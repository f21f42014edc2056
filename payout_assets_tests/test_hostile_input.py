"""Hostile input is refused alone, with a reason, at a bounded cost: an ids-file line of many
megabytes, payout values beyond what the columns or the parser can hold, condition ids that are
not canonical."""

from __future__ import annotations

import io
from pathlib import Path

from payout_assets.simulator import Simulator
from payout_assets.validate.ids import MAX_LINE_BYTES, InvalidId, iter_id_lines
from payout_assets_tests.conftest import Pipeline


def _ids(sim: Simulator, n: int) -> list[str]:
    return [sim.universe.condition_id(i).removeprefix("0x") for i in range(n)]


# -- item 9: ids-file lines are bounded ---------------------------------------------------------


class _ReadLog(io.BytesIO):
    """A real in-memory file that records the size of every read asked of it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.sizes: list[int | None] = []

    def read(self, size: int | None = -1) -> bytes:
        self.sizes.append(size)
        return super().read(size)


def test_the_line_reader_never_returns_or_reads_a_whole_overlong_line() -> None:
    good = ["a" * 64, "0x" + "B" * 64, " " + "c" * 64 + " \r"]
    long_line = b"d" * (3 * 1024 * 1024)
    data = (good[0] + "\n\n" + good[1] + "\n").encode() + long_line + b"\n" + good[2].encode()
    stream = _ReadLog(data)
    out = list(iter_id_lines(stream, chunk_bytes=4096))

    assert out[:2] == good[:2]
    assert out[3] == good[2].rstrip("\r")  # the last line has no newline; blank lines are skipped
    overlong = out[2]
    assert isinstance(overlong, InvalidId)
    assert overlong.reason == f"line longer than {MAX_LINE_BYTES} bytes ({len(long_line):,} bytes)"
    assert overlong.text == "d" * 80 + "…"
    assert all(len(x if isinstance(x, str) else x.text) <= MAX_LINE_BYTES for x in out)
    # The file was read in fixed-size chunks only, never "the rest" or a whole line.
    assert stream.sizes and all(size == 4096 for size in stream.sizes)


def test_lines_at_the_bound_are_kept_and_one_byte_more_is_not() -> None:
    at_bound = b"e" * MAX_LINE_BYTES
    over = b"f" * (MAX_LINE_BYTES + 1)
    out = list(iter_id_lines(io.BytesIO(at_bound + b"\r\n" + over + b"\r\n"), chunk_bytes=100))
    assert out[0] == at_bound.decode()
    assert isinstance(out[1], InvalidId)
    assert out[1].reason.startswith(f"line longer than {MAX_LINE_BYTES} bytes")


def test_a_multi_megabyte_line_is_recorded_invalid_and_truncated_in_the_ledger(
    pipeline: Pipeline, sim: Simulator, tmp_path: Path
) -> None:
    ids = _ids(sim, 300)
    path = tmp_path / "ids.txt"
    with path.open("wb") as f:
        f.write(("\n".join(ids[:150]) + "\n").encode())
        f.write(b"0x" + b"9" * (4 * 1024 * 1024) + b"\n")
        f.write(("\n".join(ids[150:]) + "\n").encode())
    pipeline.ids_file = path
    pipeline.snapshot()

    store = pipeline.store
    ledger = store.query_rows(
        "SELECT input_id, state, reason FROM payout_backfill.ledger_latest ORDER BY input_id"
    )
    assert max(len(input_id) for input_id, _, _ in ledger) <= MAX_LINE_BYTES
    invalid = [(i, r) for i, s, r in ledger if s == "invalid_id"]
    assert invalid == [
        ("0x" + "9" * 78 + "…", f"line longer than 1024 bytes ({4 * 1024 * 1024 + 2:,} bytes)")
    ]
    assert {i for i, s, _ in ledger if s != "invalid_id"} == set(ids)
    assert len(ledger) == len(ids) + 1
