-- A shard run failed: every id of the shard is `failed` with the error (the failing batch's ids
-- are then given their own, more precise reason by a later version).
INSERT INTO payout_backfill.id_ledger
SELECT generation, condition_id, 'failed', {reason:String}, toInt16(shard), {run_id:String},
       {version:UInt64}, now64(3)
FROM payout_backfill.missing_condition_ids
WHERE shard = {shard:UInt16} AND generation = {generation:String};
