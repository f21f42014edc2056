-- Record that the schema files of this version (and digest) have been applied.
INSERT INTO payout_backfill.schema_version (version, digest, applied_at)
VALUES ({version:UInt32}, {digest:String}, now64(3, 'UTC'))
