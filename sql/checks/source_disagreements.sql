-- A sample of payout_backfill.source_disagreements, with the total.
SELECT condition_id, source_a, numerators_a, denominator_a, source_b, numerators_b, denominator_b,
       count() OVER () AS total
FROM payout_backfill.source_disagreements
ORDER BY condition_id, source_a, source_b
LIMIT 20
