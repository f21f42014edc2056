-- Preflight: the server answers a query at all (and which version it runs).
SELECT version(), currentDatabase()
