-- Logs the node marked `removed` (a reorg dropped them): their rows must not stay.
DELETE FROM payout_backfill.polygon_resolutions
WHERE (block_hash, log_index) IN {removed:Array(Tuple(String, UInt32))}
