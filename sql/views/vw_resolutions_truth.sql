-- One row per condition with a payout. Precedence: market_resolutions_final, then the chain
-- (polygon: ConditionResolution logs), then the subgraph (goldsky). The ReplacingMergeTree
-- tables are read with FINAL so unmerged
-- duplicates never leak into P&L, and LIMIT 1 BY guarantees one row per condition. An ingest
-- row is shown only under a canonical id (64 lowercase hex): '0xABC…' and 'abc…' are two keys of
-- the ingest table, so with any spelling allowed one condition could show twice, with two
-- payouts (`payout-backfill verify` FAILs on such rows: canonical_condition_ids). Sums are taken
-- in UInt128, where UInt64 numerators cannot wrap around.
CREATE OR REPLACE VIEW cascadian_clean.vw_resolutions_truth AS
SELECT
    condition_id,
    payout_numerators,
    payout_denominator,
    winning_index,
    resolved_at,
    source
FROM
(
    SELECT
        lower(toString(condition_id_norm))                 AS condition_id,
        CAST(payout_numerators, 'Array(UInt64)')            AS payout_numerators,
        toUInt64(payout_denominator)                        AS payout_denominator,
        toInt32(winning_index)                              AS winning_index,
        CAST(resolved_at, 'Nullable(DateTime(\'UTC\'))')    AS resolved_at,
        'market_resolutions_final'                          AS source,
        1                                                   AS priority
    FROM default.market_resolutions_final FINAL
    WHERE payout_denominator > 0

    UNION ALL

    SELECT
        condition_id,
        payout_numerators,
        payout_denominator,
        toInt32(winning_index),
        CAST(resolved_at, 'Nullable(DateTime(\'UTC\'))'),
        'polygon',
        2
    FROM payout_backfill.polygon_resolutions FINAL
    WHERE outcome = 'resolved'

    UNION ALL

    SELECT
        condition_id,
        payout_numerators,
        payout_denominator,
        toInt32(winning_index),
        resolved_at,
        toString(source),
        3
    FROM default.resolutions_external_ingest FINAL
    WHERE payout_denominator > 0
      AND arraySum(arrayMap(x -> toUInt128(x), payout_numerators)) = payout_denominator
      AND match(condition_id, '^[0-9a-f]{64}$')
)
ORDER BY condition_id, priority
LIMIT 1 BY condition_id;
