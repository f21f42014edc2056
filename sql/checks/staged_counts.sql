-- Rows, distinct ids and rejected rows of one slice of a shard run (slices never share an id,
-- so the counts add up).
SELECT count(), uniqExact(condition_id), countIf(outcome = 'rejected')
FROM payout_backfill.goldsky_payouts
WHERE shard = {shard:UInt16} AND run_id = {run_id:String}
  AND condition_id BETWEEN {lo:String} AND {hi:String}
