-- A generation's raw ids, distinct (identical raw texts collapse here). Streamed once into a
-- spool file, so Python holds one chunk at a time whatever the size of the universe.
SELECT DISTINCT raw_id
FROM payout_backfill.id_input
WHERE generation = {generation:String}
ORDER BY raw_id
