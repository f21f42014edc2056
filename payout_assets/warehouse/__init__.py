"""Where payouts are written: the ClickHouse store, its schema, the SQL files it runs, and the
table operations each asset performs."""
