-- Block ranges' rows by outcome (what their materialisation reports).
SELECT block_range, outcome, count()
FROM payout_backfill.polygon_resolutions FINAL
WHERE block_range IN {block_ranges:Array(String)}
GROUP BY block_range, outcome
ORDER BY block_range, outcome
