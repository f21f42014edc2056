"""One TLS context per process for every HTTP client of the sources."""

from __future__ import annotations

import ssl
from functools import cache

import httpx


@cache
def tls_context() -> ssl.SSLContext:
    """What httpx would build for each client (the CA bundle loaded: about 0.2 CPU-seconds a
    client), built once and shared; the forkserver builds it before it forks the runs
    (``payout_assets.cli.launcher.warm_up``). A context is safe to share between clients and
    threads."""
    return httpx.create_ssl_context()
