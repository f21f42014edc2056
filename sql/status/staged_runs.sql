-- Progress of every staged shard run of a generation, as rows land (a run flushes as it goes).
-- Staging is partitioned by (shard, run_id) and older runs are dropped after ingest, so this
-- reads a handful of partitions.
SELECT
    shard,
    run_id,
    count()                      AS staged_rows,
    countIf(outcome = 'resolved') AS resolved,
    countIf(outcome = 'rejected') AS rejected,
    toUnixTimestamp64Milli(min(fetched_at)) / 1000 AS first_fetch,
    toUnixTimestamp64Milli(max(fetched_at)) / 1000 AS last_fetch
FROM payout_backfill.goldsky_payouts
WHERE generation = {generation:String}
GROUP BY shard, run_id
ORDER BY shard, last_fetch
