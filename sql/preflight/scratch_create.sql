-- Preflight: prove the DSN's user can do what the pipeline does (create its database, create a
-- table, insert, read back, drop) on a scratch table that is dropped straight away.
CREATE DATABASE IF NOT EXISTS payout_backfill;

CREATE TABLE payout_backfill.{name:Identifier}
(
    n    UInt32,
    note String
)
ENGINE = MergeTree
ORDER BY n;
