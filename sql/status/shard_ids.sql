-- Ids each shard has to fetch in the current snapshot (the table holds one generation).
SELECT shard, count() AS ids, any(generation) AS generation
FROM payout_backfill.missing_condition_ids
GROUP BY shard
ORDER BY shard
