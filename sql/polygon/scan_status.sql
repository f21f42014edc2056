-- The scan as `payout-backfill status` shows it: ranges started, blocks covered, events found.
SELECT
    uniqExact(block_range),
    sum(last_block - first_block + 1),
    min(first_block),
    max(last_block),
    sum(events)
FROM payout_backfill.polygon_scan_chunks
