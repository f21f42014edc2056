"""Goldsky's Polymarket subgraph (graph-node GraphQL): the client, its query documents and the
schemas they are validated against, and the shard fetch."""
