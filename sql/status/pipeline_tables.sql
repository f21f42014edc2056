-- The pipeline's own tables that exist (none before the first run): status and preflight read
-- only what is there instead of failing on a fresh store.
SELECT name FROM system.tables WHERE database = 'payout_backfill' ORDER BY name
