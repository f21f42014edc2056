"""Jobs: the three steps of a backfill, as the CLI and the schedule launch them."""

import dagster as dg

from payout_assets.defs.assets import (
    goldsky_payouts,
    missing_condition_ids,
    resolutions_external_ingest,
    vw_resolutions_truth,
)

refresh_missing_ids = dg.define_asset_job(
    "refresh_missing_ids",
    selection=[missing_condition_ids],
    description="Take a new snapshot: the ids still missing a payout, split into shards.",
)

backfill_shard = dg.define_asset_job(
    "backfill_shard",
    selection=[goldsky_payouts, resolutions_external_ingest],
    description="Fetch, validate and ingest one shard (one run per shard: a failure stays local).",
)

publish_truth_view = dg.define_asset_job(
    "publish_truth_view",
    selection=[vw_resolutions_truth],
    description="Refresh cascadian_clean.vw_resolutions_truth and run its checks.",
)
