-- Valid external payouts that the truth view does not show (must be none).
SELECT e.condition_id
FROM default.resolutions_external_ingest AS e FINAL
WHERE e.payout_denominator > 0
  AND arraySum(e.payout_numerators) = e.payout_denominator
  AND e.condition_id NOT IN (SELECT condition_id FROM cascadian_clean.vw_resolutions_truth)
ORDER BY e.condition_id
LIMIT 20
