SELECT count()
FROM default.resolutions_external_ingest
WHERE run_id = {run_id:String} AND condition_id IN (
    SELECT condition_id FROM payout_backfill.goldsky_payouts
    WHERE shard = {shard:UInt16} AND run_id = {run_id:String}
)
