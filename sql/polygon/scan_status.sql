-- The scan as `payout-backfill status` shows it: ranges started, blocks covered, events found.
SELECT
    uniqExact(block_range)                      AS ranges,
    sum(last_block - first_block + 1)           AS blocks_covered,
    min(first_block)                            AS first_block,
    max(last_block)                             AS last_block,
    sum(events)                                 AS events
FROM payout_backfill.polygon_scan_chunks
