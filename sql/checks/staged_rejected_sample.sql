-- Rejected rows of one shard run, by id, with the rule they broke (shown on the Checks tab).
SELECT condition_id, reason, raw_numerators, raw_denominator
FROM payout_backfill.goldsky_payouts
WHERE shard = {shard:UInt16} AND run_id = {run_id:String} AND outcome = 'rejected'
ORDER BY condition_id
LIMIT 20
