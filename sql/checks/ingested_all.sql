-- The whole ingest table, read with FINAL (for `payout-backfill verify`).
SELECT condition_id, payout_numerators, payout_denominator, winning_index, resolved_at
FROM default.resolutions_external_ingest FINAL
ORDER BY condition_id
