SELECT condition_id, count() AS copies
FROM payout_backfill.goldsky_payouts
WHERE shard = {shard:UInt16} AND run_id = {run_id:String}
GROUP BY condition_id
HAVING copies > 1
ORDER BY condition_id
LIMIT 20
