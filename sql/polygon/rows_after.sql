-- Rows of a block range past a point (left by a run killed between writing a chunk and recording it,
-- or by blocks a reorg replaced).
SELECT count()
FROM payout_backfill.polygon_resolutions
WHERE block_number > {after:Int64} AND block_number <= {last:UInt64}
