-- After FINAL, a condition must appear once; anything else is a broken sort key. One slice of a
-- shard run at a time: slices never share an id, so the counts add up.
SELECT count(), uniqExact(condition_id)
FROM default.resolutions_external_ingest FINAL
WHERE condition_id BETWEEN {lo:String} AND {hi:String}
  AND condition_id IN (
    SELECT condition_id FROM payout_backfill.goldsky_payouts
    WHERE shard = {shard:UInt16} AND run_id = {run_id:String}
      AND condition_id BETWEEN {lo:String} AND {hi:String}
)
