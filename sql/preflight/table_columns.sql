-- Preflight: a source table's columns and types, in table order (empty when it does not exist).
SELECT name, type
FROM system.columns
WHERE database = {db:String} AND table = {table:String}
ORDER BY position
