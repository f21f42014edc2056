-- How far a block range's scan has come: the last block of its newest chunk (0 when none).
SELECT max(last_block), count()
FROM payout_backfill.polygon_scan_chunks
WHERE block_range = {block_range:String}
