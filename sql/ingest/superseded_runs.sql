-- Published runs of a shard older than the one just ingested: their staging rows are superseded.
-- (A newer run, e.g. of a backfill running at the same time, is left for its own ingest.)
SELECT DISTINCT run_id
FROM payout_backfill.shard_runs
WHERE shard = {shard:UInt16}
  AND finished_at < (
      SELECT max(finished_at) FROM payout_backfill.shard_runs
      WHERE shard = {shard:UInt16} AND run_id = {run_id:String}
  )
