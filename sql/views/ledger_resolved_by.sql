-- Which source resolved each id of the backfill: the ledger's latest state beside the truth
-- view's source ('' while no source has a payout). Ids the chain resolved are still asked of
-- the subgraph (their state says what it answered), so the two sources can be compared.
CREATE OR REPLACE VIEW payout_backfill.ledger_resolved_by AS
SELECT
    l.generation AS generation,
    l.input_id   AS input_id,
    l.state      AS state,
    t.source     AS resolved_by
FROM payout_backfill.ledger_latest AS l
LEFT JOIN cascadian_clean.vw_resolutions_truth AS t ON t.condition_id = l.input_id
SETTINGS join_use_nulls = 0;
