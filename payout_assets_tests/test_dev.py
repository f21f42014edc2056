"""`make dev` stops everything it started (dagster dev's webserver, daemon and code
servers, and the simulator) when it is sent SIGTERM, as a service manager or `kill` does."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import httpx
import psutil
import pytest

from payout_assets_tests.cli_helpers import project_env, standins, start
from payout_assets_tests.dagster_ui import free_port, wait_for
from payout_standins.procs import stop_group

pytestmark = pytest.mark.e2e


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _names(procs: list[psutil.Process]) -> list[str]:
    out = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            out.append(" ".join(proc.cmdline()[:5]))
    return out


def test_dev_stops_dagster_and_the_simulator_on_sigterm(tmp_path: Path) -> None:
    env = project_env(tmp_path / "home", "unused", PAYOUT_SHARDS="2")
    del env["GOLDSKY_ENDPOINT"]  # so dev serves the simulator too
    port = free_port()
    log = tmp_path / "dev.log"
    proc = start(standins("dev", "--port", str(port)), env, log)
    seen: dict[int, psutil.Process] = {}
    try:

        def serving() -> bool | None:
            assert proc.poll() is None, log.read_text()[-3000:]
            for child in _descendants(proc.pid):
                seen[child.pid] = child
            response = httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=5)
            return True if response.status_code == 200 else None

        wait_for(serving, timeout_s=240, interval_s=1.0, what="the webserver of `make dev`")
        for child in _descendants(proc.pid):
            seen[child.pid] = child
        names = " | ".join(_names(list(seen.values())))
        assert "simulate" in names and "dagster._daemon" in names, names
        assert "dagster_webserver" in names, names
        groups = {os.getpgid(p.pid) for p in seen.values() if p.is_running()}
        assert len(groups) >= 2, names  # dagster dev and the simulator, each in its own group

        os.kill(proc.pid, signal.SIGTERM)  # the CLI process alone, as `kill <pid>` does
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
        _, alive = psutil.wait_procs(list(seen.values()), timeout=15)
        assert not alive, f"left running: {_names(alive)}"
    finally:
        stop_group(proc, signal.SIGKILL)
        for child in seen.values():  # psutil checks each is still the process it saw
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(list(seen.values()), timeout=10)
