"""Where candidate condition ids come from."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from payout_assets.warehouse.sql import load_sql


class IdSourceResource(dg.ConfigurableResource):
    """The candidate ids: a text file (one id per line, the original scripts' input format) when
    ``PAYOUT_IDS_FILE`` is set, otherwise the query in ``sql/condition_universe.sql``."""

    ids_file: str | None = Field(
        default=None, description="PAYOUT_IDS_FILE: one condition id per line."
    )

    def file(self) -> Path | None:
        if not self.ids_file:
            return None
        path = Path(self.ids_file).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"PAYOUT_IDS_FILE={self.ids_file!r} is not a readable file")
        return path

    def universe_sql(self) -> str:
        return load_sql("condition_universe.sql")
