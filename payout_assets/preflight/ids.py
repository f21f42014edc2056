"""The id file, when PAYOUT_IDS_FILE names one."""

from __future__ import annotations

from pathlib import Path

from payout_assets.preflight.result import CheckResult, failed, passed, warned
from payout_assets.validate.ids import InvalidId, normalize_condition_id


def check_ids_file(path_text: str) -> CheckResult:
    """PAYOUT_IDS_FILE: readable, and how many of its lines are condition ids."""
    name = "id source (PAYOUT_IDS_FILE)"
    path = Path(path_text).expanduser()
    fix = "set PAYOUT_IDS_FILE to a readable text file with one condition id per line, or unset it to use sql/condition_universe.sql"
    lines = 0
    invalid = 0
    valid: set[str] = set()
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for raw in handle:
                if not raw.strip():
                    continue
                lines += 1
                cid = normalize_condition_id(raw)
                if isinstance(cid, InvalidId):
                    invalid += 1
                else:
                    valid.add(cid)
    except OSError as exc:
        return failed(name, f"cannot read {path}: {exc.strerror or exc}", fix)
    detail = f"{path}: {lines:,} ids, {len(valid):,} distinct valid, {invalid:,} invalid"
    if not valid:
        return failed(
            name,
            detail,
            "the file holds no condition id (64 hex digits, 0x optional, one per line); " + fix,
        )
    if invalid:
        return warned(
            name, detail, "invalid lines are recorded as invalid_id in the ledger and skipped"
        )
    return passed(name, detail)
