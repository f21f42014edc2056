-- Counts by ledger state for one generation (the states sum to the distinct ids that entered).
SELECT state, count() AS ids
FROM payout_backfill.ledger_latest
WHERE generation = {generation:String}
GROUP BY state
ORDER BY state
