DELETE FROM payout_backfill.polygon_scan_chunks
WHERE block_range = {block_range:String} AND last_block > {after:Int64}
