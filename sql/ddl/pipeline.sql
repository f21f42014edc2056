-- Tables the pipeline owns, applied once per schema version (payout_assets/write/schema.py: bump
-- SCHEMA_VERSION with any change here). Every statement stays idempotent (IF NOT EXISTS, MODIFY
-- SETTING): stores an older release made run it over tables that already exist.
-- Engines and types run unchanged on the embedded engine (chdb) and on a ClickHouse server.

CREATE DATABASE IF NOT EXISTS payout_backfill;

CREATE DATABASE IF NOT EXISTS cascadian_clean;

-- Raw candidate ids of one generation (one materialisation of missing_condition_ids). A partition
-- per generation, dropped whole once the generation is built: deleting rows instead is a
-- mutation that rewrites every part later, inside whichever process opens the engine next.
CREATE TABLE IF NOT EXISTS payout_backfill.id_input
(
    generation String,
    raw_id     String
)
ENGINE = MergeTree
PARTITION BY generation
ORDER BY raw_id;

-- The ids still missing a payout, each assigned to one shard. Replaced as a whole by each
-- generation (built aside, then swapped in with EXCHANGE TABLES).
--
-- The block settings of this table and the three a shard run writes (goldsky_payouts, id_ledger,
-- resolutions_external_ingest): the embedded engine runs inside a shard process, and every column
-- it reads, writes or merges holds a buffer of one compression block (1 MiB by default, reached
-- once a column file outgrows it: one reason a shard's heap grew with the backfill's size).
-- 64 KiB blocks and 2,048-row merge blocks, measured replaying one 125,203-id shard's sessions
-- on a 1,000,000-id store: ledger insert +44 -> +34 MB, ingest +62 -> +42 MB, a merge of
-- each shared table +38 -> +21 MB.
CREATE TABLE IF NOT EXISTS payout_backfill.missing_condition_ids
(
    condition_id String,
    shard        UInt16,
    generation   String
)
ENGINE = MergeTree
ORDER BY (shard, condition_id)
SETTINGS min_compress_block_size = 16384,
         max_compress_block_size = 65536,
         merge_max_block_size = 2048;

-- The subgraph block every query of a generation is pinned to (one consistent snapshot).
CREATE TABLE IF NOT EXISTS payout_backfill.snapshots
(
    generation          String,
    block_number        UInt64,
    block_hash          String,
    deployment          String,
    has_indexing_errors Bool,
    shard_count         UInt16,
    input_rows          UInt64,                 -- rows read from the id source
    distinct_ids        UInt64,                 -- distinct ids that entered (the ledger's total)
    created_at          DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY created_at;

-- Every id asked for by a shard run, with what came back. Partitioned by (shard, run) so a run's
-- rows are replaced or dropped as a unit; the ingest reads only one successful run per shard.
CREATE TABLE IF NOT EXISTS payout_backfill.goldsky_payouts
(
    shard              UInt16,
    run_id             String,
    generation         String,
    condition_id       String,
    outcome            LowCardinality(String),  -- resolved | unresolved | not_found | rejected
    reason             String,
    payout_numerators  Array(UInt64),
    payout_denominator UInt64,
    winning_index      Int16,
    resolved_at        Nullable(DateTime('UTC')),
    raw_numerators     Array(String),
    raw_denominator    String,
    block_number       UInt64,
    fetched_at         DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY (shard, run_id)
ORDER BY condition_id
-- Never merged: a run's rows are read a few times (publish, ingest, checks) and then its partition
-- is dropped whole, so a merge would only rewrite them once more, in whichever shard process holds
-- the embedded engine next (measured at 1,000,000 ids: the publish session's peak +110 MB -> +60
-- MB). A run keeps one part per flush (shard.FLUSH_ROWS rows each), in key order, so a slice of
-- the run (shard/slices.sql) reads one or two of them.
SETTINGS max_bytes_to_merge_at_max_space_in_pool = 1,
         max_bytes_to_merge_at_min_space_in_pool = 1,
         min_compress_block_size = 16384,
         max_compress_block_size = 65536,
         merge_max_block_size = 2048;

-- Stores created before the settings above get them too.
ALTER TABLE payout_backfill.goldsky_payouts
    MODIFY SETTING max_bytes_to_merge_at_max_space_in_pool = 1,
                   max_bytes_to_merge_at_min_space_in_pool = 1,
                   min_compress_block_size = 16384, max_compress_block_size = 65536,
                   merge_max_block_size = 2048;

-- Shard runs that finished and were validated: the ingest takes the newest one per shard.
CREATE TABLE IF NOT EXISTS payout_backfill.shard_runs
(
    shard       UInt16,
    run_id      String,
    generation  String,
    finished_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (shard, finished_at);

-- Every state every id was ever recorded in. The latest state per id is the ledger people read.
CREATE TABLE IF NOT EXISTS payout_backfill.id_ledger
(
    generation   String,
    input_id     String,                  -- normalised id, or the trimmed raw text if invalid
    state        LowCardinality(String),  -- pending | invalid_id | already_resolved | fetched
                                          -- | ingested | unresolved | not_found | rejected | failed
    reason       String,
    shard        Int16,                   -- -1 when the id never reached a shard
    run_id       String,
    version      UInt64,                  -- nanoseconds; the highest version is the latest state
    recorded_at  DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (generation, input_id, version)
-- Every shard run adds parts here, and a background merge runs in whichever process holds the
-- embedded engine next: a shard. Wide parts merged column by column (vertical) halve what that
-- merge holds: measured merging 8 parts of 125k rows, +90 MB -> +43 MB of heap.
SETTINGS min_bytes_for_wide_part = 0,
         vertical_merge_algorithm_min_rows_to_activate = 1,
         vertical_merge_algorithm_min_columns_to_activate = 1,
         min_compress_block_size = 16384,
         max_compress_block_size = 65536,
         merge_max_block_size = 2048;

-- Payouts from external sources (Goldsky); the newest fetch of a condition wins.
CREATE TABLE IF NOT EXISTS default.resolutions_external_ingest
(
    condition_id       String,
    payout_numerators  Array(UInt64),
    payout_denominator UInt64,
    winning_index      Int16,             -- -1 when the payout is split (e.g. 50/50)
    resolved_at        Nullable(DateTime('UTC')),
    source             LowCardinality(String),
    block_number       UInt64,
    fetched_at         DateTime64(3, 'UTC'),
    run_id             String,
    version            UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY condition_id
-- Merged column by column, for the same reason as payout_backfill.id_ledger.
SETTINGS min_bytes_for_wide_part = 0,
         vertical_merge_algorithm_min_rows_to_activate = 1,
         vertical_merge_algorithm_min_columns_to_activate = 1,
         min_compress_block_size = 16384,
         max_compress_block_size = 65536,
         merge_max_block_size = 2048;

-- Stores created before the block settings above get them too (new parts use them; older parts
-- are rewritten by their next merge). goldsky_payouts gets them with its merge settings.
ALTER TABLE payout_backfill.missing_condition_ids
    MODIFY SETTING min_compress_block_size = 16384, max_compress_block_size = 65536,
                   merge_max_block_size = 2048;

ALTER TABLE payout_backfill.id_ledger
    MODIFY SETTING min_compress_block_size = 16384, max_compress_block_size = 65536,
                   merge_max_block_size = 2048;

ALTER TABLE default.resolutions_external_ingest
    MODIFY SETTING min_compress_block_size = 16384, max_compress_block_size = 65536,
                   merge_max_block_size = 2048;
