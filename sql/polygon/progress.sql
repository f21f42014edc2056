-- How far each block range's scan has come: the last block of its newest chunk (ranges with no
-- chunk are absent).
SELECT block_range, max(last_block)
FROM payout_backfill.polygon_scan_chunks
WHERE block_range IN {block_ranges:Array(String)}
GROUP BY block_range
