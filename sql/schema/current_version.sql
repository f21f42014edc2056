-- The schema version and digest the store was last brought to.
SELECT version, digest
FROM payout_backfill.schema_version
ORDER BY applied_at DESC, version DESC
LIMIT 1
