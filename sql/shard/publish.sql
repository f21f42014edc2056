-- A shard run finished and every row was validated: record each id's state (one slice of the
-- run at a time, see shard/slices.sql; shard/record_run.sql then records the run itself).
INSERT INTO payout_backfill.id_ledger
SELECT generation, condition_id, if(outcome = 'resolved', 'fetched', outcome), reason,
       toInt16(shard), run_id, {version:UInt64}, now64(3)
FROM payout_backfill.goldsky_payouts
WHERE shard = {shard:UInt16} AND run_id = {run_id:String}
  AND condition_id BETWEEN {lo:String} AND {hi:String}
