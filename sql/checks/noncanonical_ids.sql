-- Rows of the ingest table whose condition id is not canonical (64 lowercase hex, no 0x), with a
-- sample and the total. No FINAL: every such row is a fault, merged or not, and counting without
-- it streams instead of merging the whole table.
SELECT condition_id, count() OVER () AS total
FROM default.resolutions_external_ingest
WHERE NOT match(condition_id, '^[0-9a-f]{64}$')
ORDER BY condition_id
LIMIT 20
