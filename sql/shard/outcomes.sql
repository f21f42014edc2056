SELECT outcome, count() AS ids
FROM payout_backfill.goldsky_payouts
WHERE shard = {shard:UInt16} AND run_id = {run_id:String}
GROUP BY outcome
ORDER BY outcome
