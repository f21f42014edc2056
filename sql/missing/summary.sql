-- Counts by ledger state for one generation (the states sum to the distinct ids that entered).
-- optimize_aggregation_in_order: why, in views/ledger_latest.sql.
SELECT state, count() AS ids
FROM payout_backfill.ledger_latest
WHERE generation = {generation:String}
GROUP BY state
ORDER BY state
SETTINGS optimize_aggregation_in_order = 1
