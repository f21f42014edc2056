ALTER TABLE payout_backfill.goldsky_payouts DROP PARTITION ({shard:UInt16}, {run_id:String});
