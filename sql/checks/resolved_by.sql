-- The backfill's ids by the source that resolved them (its newest generation).
SELECT resolved_by, count()
FROM payout_backfill.ledger_resolved_by
WHERE generation = {generation:String}
GROUP BY resolved_by
ORDER BY resolved_by
