-- Copy the candidate universe (sql/condition_universe.sql, spliced in where __UNIVERSE__ stands)
-- into the generation's raw input, as text, exactly as the source spells it.
INSERT INTO payout_backfill.id_input (generation, raw_id)
SELECT {generation:String}, toString(*)
FROM
(
__UNIVERSE__
);
