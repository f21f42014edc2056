SELECT shard, count() AS ids
FROM payout_backfill.missing_condition_ids
GROUP BY shard
ORDER BY shard
