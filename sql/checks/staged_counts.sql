-- Rows, distinct ids and rejected rows of one shard run.
SELECT count(), uniqExact(condition_id), countIf(outcome = 'rejected')
FROM payout_backfill.goldsky_payouts
WHERE shard = {shard:UInt16} AND run_id = {run_id:String}
