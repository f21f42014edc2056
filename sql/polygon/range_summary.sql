-- One block range's rows by outcome (what its materialisation reports).
SELECT outcome, count()
FROM payout_backfill.polygon_resolutions FINAL
WHERE block_number >= {first:UInt64} AND block_number <= {last:UInt64}
GROUP BY outcome
ORDER BY outcome
