-- The newest generation and the block its queries are pinned to.
SELECT generation, block_number, block_hash, deployment, has_indexing_errors, shard_count,
       input_rows, distinct_ids
FROM payout_backfill.snapshots
ORDER BY created_at DESC
LIMIT 1
