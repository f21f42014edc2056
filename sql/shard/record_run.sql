-- The last step of publishing a shard run: from now on the ingest may take it.
INSERT INTO payout_backfill.shard_runs
VALUES ({shard:UInt16}, {run_id:String}, {generation:String}, now64(3))
