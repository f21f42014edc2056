"""Goldsky's Polymarket subgraph (graph-node GraphQL): the client, its query documents and the
schemas they are validated against, the shard fetch and the Pipes worker that runs it."""
