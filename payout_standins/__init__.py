"""Stand-ins for the external services the product talks to, for development, tests and the demo.

Never imported by ``payout_assets`` (a test checks it): the product runs against the real
services; these answer like them on 127.0.0.1. ``python -m payout_standins`` runs the demo, the
development UI, or one stand-in in the foreground."""
