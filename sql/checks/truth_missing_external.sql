-- Valid external payouts that the truth view does not show (must be none). Rows under a
-- non-canonical id are not shown by design; checks/noncanonical_ids.sql counts them.
SELECT e.condition_id
FROM default.resolutions_external_ingest AS e FINAL
WHERE e.payout_denominator > 0
  AND arraySum(arrayMap(x -> toUInt128(x), e.payout_numerators)) = e.payout_denominator
  AND match(e.condition_id, '^[0-9a-f]{64}$')
  AND e.condition_id NOT IN (SELECT condition_id FROM cascadian_clean.vw_resolutions_truth)
ORDER BY e.condition_id
LIMIT 20
