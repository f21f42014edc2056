-- The latest recorded state of every id of every generation.
CREATE OR REPLACE VIEW payout_backfill.ledger_latest AS
SELECT
    generation,
    input_id,
    argMax(state, version)  AS state,
    argMax(reason, version) AS reason,
    argMax(shard, version)  AS shard,
    argMax(run_id, version) AS run_id,
    max(recorded_at)        AS recorded_at
FROM payout_backfill.id_ledger
GROUP BY generation, input_id;
