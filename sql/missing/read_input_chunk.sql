-- One chunk of a generation's raw ids, by keyset (the raw text is the sort key), so Python holds
-- one chunk at a time whatever the size of the universe. Identical raw texts collapse here.
SELECT DISTINCT raw_id
FROM payout_backfill.id_input
WHERE generation = {generation:String} AND raw_id > {after:String}
ORDER BY raw_id
LIMIT {limit:UInt32}
