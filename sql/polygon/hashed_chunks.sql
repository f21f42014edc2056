-- The scan ends whose block hash was recorded, newest first: the points a reorg check compares.
SELECT last_block, last_hash
FROM payout_backfill.polygon_scan_chunks
WHERE block_range = {block_range:String} AND last_hash != ''
ORDER BY last_block DESC
