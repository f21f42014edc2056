"""The simulator as a separate process, controlled through its ``/_admin`` endpoints.

Why out of process: in the same interpreter its handler threads would share the GIL with the
benchmark's sampler and the baseline client, and its CPU would be charged to the wrong process.
It runs in its own process group so stopping it can never leave a stray server holding the port.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from payout_standins.procs import stop_group

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = PROJECT_ROOT / ".venv" / "bin"
# The backfill under test runs from a production install of the project when there is one
# (``make bench`` makes it: ``uv sync --no-dev`` into .venv-bench), not from the development
# environment, whose test-only packages change what the pipeline's processes load: pandera
# imports hypothesis on its first validation when it is installed, +12 MB in each process that
# validates (measured with ``-X importtime`` and RssAnon around one ``rule_failures`` call).
BENCH_VENV = PROJECT_ROOT / ".venv-bench"
PIPELINE_BIN = BENCH_VENV / "bin" if (BENCH_VENV / "bin" / "payout-backfill").exists() else VENV_BIN


def pipeline_env(home: Path, tmp: Path, **settings: str) -> dict[str, str]:
    """The environment of a benchmarked ``payout-backfill`` process: none of the caller's
    project variables, its own DAGSTER_HOME and embedded store, and its own TMPDIR (where the
    host-wide limiter file lives: one per scenario), plus ``settings``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GOLDSKY_", "PAYOUT_", "POLYGON_", "CLICKHOUSE_"))
    }
    env.update(
        DAGSTER_HOME=str(home),
        CLICKHOUSE_DSN=f"chdb://{home / 'clickhouse'}",
        TMPDIR=str(tmp),
        **settings,
    )
    return env


START_TIMEOUT_S = 60.0


class SimulatorProcess:
    """``python -m payout_standins simulate`` (as ``bench.simserver``) in its own process group."""

    def __init__(
        self,
        size: int,
        seed: int,
        latency_ms: float,
        jitter_ms: float,
        rate_limit: int,
        log_path: Path,
    ) -> None:
        self.args = [
            str(VENV_BIN / "python"),
            "-m",
            "bench.simserver",
            "--size",
            str(size),
            "--seed",
            str(seed),
            "--port",
            "0",
            "--latency-ms",
            str(latency_ms),
            "--jitter-ms",
            str(jitter_ms),
            "--rate-limit",
            str(rate_limit),
        ]
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.base_url = ""

    def __enter__(self) -> SimulatorProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start and wait for the one line it prints: its endpoint URL (port chosen by the OS)."""
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.args,
                cwd=PROJECT_ROOT,
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        assert self.proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + START_TIMEOUT_S
        line = b""
        try:
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError(
                        f"simulator did not start (see {self.log_path}): {' '.join(self.args)}"
                    )
                if selector.select(timeout=min(left, 0.5)):
                    chunk = os.read(self.proc.stdout.fileno(), 4096)
                    if not chunk:
                        continue
                    line += chunk
        except BaseException:
            self.stop()
            raise
        finally:
            selector.close()
        self.url = line.decode().splitlines()[0].strip()
        self.base_url = self.url.split("/api/", 1)[0]

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc, signal.SIGTERM)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None

    def admin(self, method: str, route: str, body: object | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}/_admin/{route}",
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        return dict(self.admin("GET", "stats"))

    def requests(self, limit: int = 10_000) -> list[dict[str, Any]]:
        return list(self.admin("GET", f"requests?limit={limit}")["requests"])

    def reset(self) -> None:
        self.admin("POST", "reset", {})
