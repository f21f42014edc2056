-- The eth_getLogs range that last worked with this provider (0 when the scan never ran).
SELECT argMax(rpc_range, recorded_at)
FROM payout_backfill.polygon_scan_chunks
