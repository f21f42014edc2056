-- For a generation: ids the ledger accounts for, and ids in missing_condition_ids without an
-- entry (must be none).
SELECT
    (SELECT count() FROM payout_backfill.ledger_latest WHERE generation = {generation:String}),
    (SELECT count() FROM payout_backfill.missing_condition_ids AS m
     WHERE m.generation = {generation:String}
       AND m.condition_id NOT IN (SELECT input_id FROM payout_backfill.ledger_latest
                                  WHERE generation = {generation:String}))
