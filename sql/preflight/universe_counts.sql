-- Preflight: what the id source query (sql/condition_universe.sql, spliced in where __UNIVERSE__
-- stands) yields: rows, distinct ids that look like condition ids (64 hex digits, 0x optional,
-- any case), and rows that do not. Read the way missing/load_universe.sql reads it (toString of
-- the single column). Bounded in time so that a huge trades table cannot stall the preflight.
SELECT
    count() AS total_rows,
    uniqExactIf(replaceRegexpOne(lower(trimBoth(raw)), '^0x', ''),
                match(lower(trimBoth(raw)), '^(0x)?[0-9a-f]{64}$')) AS valid_ids,
    countIf(NOT match(lower(trimBoth(raw)), '^(0x)?[0-9a-f]{64}$')) AS invalid_rows
FROM
(
    SELECT toString(*) AS raw
    FROM
    (
__UNIVERSE__
    )
)
SETTINGS max_execution_time = 20
