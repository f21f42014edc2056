-- The newest validated run of a shard: what the ingest loads.
SELECT run_id, generation
FROM payout_backfill.shard_runs
WHERE shard = {shard:UInt16}
ORDER BY finished_at DESC
LIMIT 1
