-- Every condition where two sources hold different payouts, compared as exact fractions
-- ([2,0]/2 and [1,0]/1 are the same payout; products taken in UInt128, where UInt64 values
-- cannot wrap). One row per pair of sources that disagree; source_a < source_b.
CREATE OR REPLACE VIEW payout_backfill.source_disagreements AS
WITH payouts AS
(
    SELECT lower(toString(condition_id_norm))      AS condition_id,
           'market_resolutions_final'               AS source,
           CAST(payout_numerators, 'Array(UInt64)') AS numerators,
           toUInt64(payout_denominator)             AS denominator
    FROM default.market_resolutions_final FINAL
    WHERE payout_denominator > 0
    UNION ALL
    SELECT condition_id, 'polygon', payout_numerators, payout_denominator
    FROM payout_backfill.polygon_resolutions FINAL
    WHERE outcome = 'resolved'
    UNION ALL
    SELECT condition_id, toString(source), payout_numerators, payout_denominator
    FROM default.resolutions_external_ingest FINAL
    WHERE payout_denominator > 0
)
SELECT
    a.condition_id AS condition_id,
    a.source       AS source_a,
    a.numerators   AS numerators_a,
    a.denominator  AS denominator_a,
    b.source       AS source_b,
    b.numerators   AS numerators_b,
    b.denominator  AS denominator_b
FROM payouts AS a
INNER JOIN payouts AS b ON a.condition_id = b.condition_id
WHERE a.source < b.source
  AND (length(a.numerators) != length(b.numerators)
       OR arrayMap(x -> toUInt128(x) * b.denominator, a.numerators)
          != arrayMap(x -> toUInt128(x) * a.denominator, b.numerators));
