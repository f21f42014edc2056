"""Where payouts come from: one room per external source, each with its client, queries and
parsing, and the candidate condition ids (``ids``) the sources are asked about."""
