"""SQL lives in the top-level ``sql/`` folder, one file per statement group, so that it can be
read, reviewed and edited without touching Python. This module finds and splits those files."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "sql",  # a checkout / editable install
    Path(__file__).resolve().parents[1] / "sql",  # a wheel (force-included)
)


def sql_dir() -> Path:
    for candidate in _CANDIDATES:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"SQL folder not found; looked in {', '.join(map(str, _CANDIDATES))}")


@cache
def load_sql(name: str) -> str:
    """The text of ``sql/<name>`` (e.g. ``"ddl/tables.sql"``), with comment-only lines kept."""
    return (sql_dir() / name).read_text(encoding="utf-8")


def statements(name: str) -> list[str]:
    """The statements of a file, split on semicolons that end a line.

    ClickHouse's HTTP interface (and chdb) take one statement per request, so multi-statement
    files are split here; a semicolon inside a string literal never ends a line in our files.
    """
    text = load_sql(name)
    parts: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            parts.append("\n".join(current).rstrip().rstrip(";"))
            current = []
    if "".join(current).strip():
        parts.append("\n".join(current))
    return [p for p in parts if _has_code(p)]


def _has_code(statement: str) -> bool:
    return any(
        line.strip() and not line.strip().startswith("--") for line in statement.splitlines()
    )
