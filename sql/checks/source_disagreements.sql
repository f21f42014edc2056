-- Conditions where Goldsky and market_resolutions_final both have a payout and disagree
-- (compared as exact fractions: [2,0]/2 and [1,0]/1 are the same payout).
SELECT
    p.condition_id,
    p.payout_numerators AS primary_numerators,
    p.payout_denominator AS primary_denominator,
    e.payout_numerators AS goldsky_numerators,
    e.payout_denominator AS goldsky_denominator,
    count() OVER () AS total
FROM
(
    SELECT lower(toString(condition_id_norm)) AS condition_id,
           CAST(payout_numerators, 'Array(UInt64)') AS payout_numerators,
           toUInt64(payout_denominator) AS payout_denominator
    FROM default.market_resolutions_final FINAL
    WHERE payout_denominator > 0
) AS p
INNER JOIN
(
    SELECT condition_id, payout_numerators, payout_denominator
    FROM default.resolutions_external_ingest FINAL
    WHERE payout_denominator > 0
) AS e ON e.condition_id = p.condition_id
WHERE arrayMap(x -> toUInt128(x) * e.payout_denominator, p.payout_numerators)
   != arrayMap(x -> toUInt128(x) * p.payout_denominator, e.payout_numerators)
ORDER BY p.condition_id
LIMIT 20
