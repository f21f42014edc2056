-- One shard run's condition ids cut, in key order, into slices of at most {ids} ids: the first
-- and last id of each. Every statement that reads or writes a whole run (the ledger and ingest
-- inserts, the payout and duplicate checks) runs once per slice with
-- `condition_id BETWEEN {lo:String} AND {hi:String}`, so what the engine holds at once is bounded
-- by the slice, not by the shard: on the embedded engine that is the shard process's own heap.
-- The run's rows are sorted by condition_id, so the window reads them in order, without a sort.
SELECT min(condition_id) AS lo, max(condition_id) AS hi
FROM (
    SELECT condition_id,
           intDiv(row_number() OVER (ORDER BY condition_id) - 1, {ids:UInt64}) AS slice
    FROM payout_backfill.goldsky_payouts
    WHERE shard = {shard:UInt16} AND run_id = {run_id:String}
)
GROUP BY slice
ORDER BY slice
