"""The code location: everything under ``payout_assets/defs`` (dg layout)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from payout_assets.settings import raise_on_load_problems


@dg.definitions
def defs() -> dg.Definitions:
    raise_on_load_problems()  # one line naming the variable, not a traceback from a deep import
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
