"""The backfill's own steps, as plain functions the assets call: the snapshot of the ids still
missing a payout, and a shard run's preparation and failure record."""
