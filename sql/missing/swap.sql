-- The new generation's missing ids replace the previous ones in one step.
EXCHANGE TABLES payout_backfill.missing_condition_ids AND {db:Identifier}.{next:Identifier};
