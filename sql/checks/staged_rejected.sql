-- Every rejected row of one shard run and the rule it broke: the query a failed rejected_share
-- check points the operator to (payout_assets/cli/failures.py prints it with the values filled).
SELECT condition_id, reason, raw_numerators, raw_denominator
FROM payout_backfill.goldsky_payouts
WHERE shard = {shard:UInt16} AND run_id = {run_id:String} AND outcome = 'rejected'
ORDER BY condition_id
