-- Checkpoints that do not tile their block range: a gap or an overlap between consecutive
-- chunks, or a first chunk that does not start at the range's first block.
SELECT block_range, first_block, last_block, previous_last
FROM
(
    SELECT
        block_range,
        first_block,
        last_block,
        lagInFrame(last_block, 1, 0) OVER w AS previous_last,
        row_number() OVER w                 AS position
    FROM payout_backfill.polygon_scan_chunks
    WINDOW w AS (PARTITION BY block_range ORDER BY first_block
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
WHERE (position > 1 AND first_block != previous_last + 1)
   OR (position = 1 AND first_block != toUInt64(splitByChar('-', block_range)[1]))
ORDER BY block_range, first_block
LIMIT 20
