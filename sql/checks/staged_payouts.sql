-- One slice of a shard run's resolved staging rows, as the pandera model reads them.
SELECT condition_id, payout_numerators, payout_denominator, winning_index, resolved_at
FROM payout_backfill.goldsky_payouts
WHERE shard = {shard:UInt16} AND run_id = {run_id:String} AND outcome = 'resolved'
  AND condition_id BETWEEN {lo:String} AND {hi:String}
ORDER BY condition_id
