-- The published run of a shard with this run id, if the current Dagster run fetched the shard.
SELECT run_id, generation
FROM payout_backfill.shard_runs
WHERE shard = {shard:UInt16} AND run_id = {run_id:String}
LIMIT 1
