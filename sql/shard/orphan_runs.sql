-- Staging partitions of a shard whose run never published: a killed or failed run. Only called
-- while holding the shard's lock, so none of them can still be running.
SELECT DISTINCT run_id
FROM payout_backfill.goldsky_payouts
WHERE shard = {shard:UInt16}
  AND run_id NOT IN (SELECT run_id FROM payout_backfill.shard_runs WHERE shard = {shard:UInt16})
