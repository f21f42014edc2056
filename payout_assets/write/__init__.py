"""Where payouts are written: the ClickHouse store, the SQL files it runs, and the warehouse
operations each asset performs."""
