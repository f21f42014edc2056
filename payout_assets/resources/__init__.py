"""Dagster resources: configuration-bearing handles on ClickHouse and on the Goldsky endpoint."""
