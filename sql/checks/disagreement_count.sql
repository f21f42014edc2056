SELECT count() FROM payout_backfill.source_disagreements
