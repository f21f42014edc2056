-- Preflight: remove the scratch table (also run when an earlier step failed).
DROP TABLE IF EXISTS payout_backfill.{name:Identifier};
