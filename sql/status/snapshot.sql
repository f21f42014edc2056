-- The current backfill snapshot (newest generation), with when it was taken.
SELECT generation, block_number, deployment, has_indexing_errors, shard_count, input_rows,
       distinct_ids, created_at
FROM payout_backfill.snapshots
ORDER BY created_at DESC
LIMIT 1
