-- Parts of the pipeline's tables that a merge made outdated and the engine has not deleted yet
-- (warehouse/schema.py, delete_outdated_parts).
SELECT count()
FROM system.parts
WHERE NOT active
  AND (database = 'payout_backfill'
       OR (database = 'default' AND table = 'resolutions_external_ingest'));
