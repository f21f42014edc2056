-- Which version of the pipeline's schema (write/schema.py) the store holds: one row per
-- application. Created after the schema it records, so a store without it is one an older
-- release made (every step then re-ran the DDL) and gets the schema applied once.
CREATE TABLE IF NOT EXISTS payout_backfill.schema_version
(
    version    UInt32,
    digest     String,                 -- sha256 of the schema files applied
    applied_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY applied_at;
