-- Preflight: the rows just inserted into the scratch table are readable.
SELECT count(), sum(n) FROM payout_backfill.{name:Identifier}
