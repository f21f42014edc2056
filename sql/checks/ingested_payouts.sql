-- The ingest table (read with FINAL) for the conditions one shard run fetched.
SELECT condition_id, payout_numerators, payout_denominator, winning_index, resolved_at
FROM default.resolutions_external_ingest FINAL
WHERE condition_id IN (
    SELECT condition_id FROM payout_backfill.goldsky_payouts
    WHERE shard = {shard:UInt16} AND run_id = {run_id:String}
)
ORDER BY condition_id
