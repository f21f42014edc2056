-- Staging partitions of a shard (one per run), to drop the ones a newer run replaces.
SELECT DISTINCT run_id
FROM payout_backfill.goldsky_payouts
WHERE shard = {shard:UInt16}
