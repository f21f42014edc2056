"""Where payouts are fetched: the Goldsky (graph-node) GraphQL client, its query documents and the
schemas they are validated against."""
