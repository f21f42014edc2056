DELETE FROM payout_backfill.polygon_resolutions
WHERE block_number > {after:Int64} AND block_number <= {last:UInt64}
