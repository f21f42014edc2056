-- Incremental refresh: candidates whose latest state in the previous snapshot was `unresolved` or
-- `not_found` (asked at that snapshot's block) and that the subgraph has not changed since.
-- optimize_aggregation_in_order: why, in views/ledger_latest.sql.
INSERT INTO {db:Identifier}.{unchanged:Identifier}
SELECT input_id, state
FROM payout_backfill.ledger_latest
WHERE generation = {previous:String}
  AND state IN ('unresolved', 'not_found')
  AND input_id IN (SELECT condition_id FROM {db:Identifier}.{candidates:Identifier} WHERE reason = '')
  AND input_id NOT IN (SELECT condition_id FROM {db:Identifier}.{changed:Identifier})
  AND input_id NOT IN (SELECT condition_id FROM cascadian_clean.vw_resolutions_truth)
SETTINGS optimize_aggregation_in_order = 1;
