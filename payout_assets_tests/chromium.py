"""Headless Chromium for the UI tests: a screenshot or the rendered DOM of a page that
``dagster dev`` serves, bounded in time, its process group stopped afterwards."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from payout_assets_tests.dagster_ui import UiTestError
from payout_standins.procs import stop_group

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def chromium_path() -> str | None:
    """Debian's ``chromium`` (scripts/install-system-deps.sh installs it)."""
    return shutil.which("chromium")


def _chromium_argv(
    profile_dir: Path, virtual_time_budget_ms: int, window: tuple[int, int]
) -> list[str]:
    """Headless Chromium kept off every network but loopback, and quiet in CI.

    ``--virtual-time-budget`` lets the single-page app fetch its GraphQL data and render before
    the capture (virtual time waits for pending requests, so a slow CI machine does not capture
    a loading screen)."""
    binary = chromium_path()
    if binary is None:
        raise UiTestError("chromium is not installed (run scripts/install-system-deps.sh)")
    return [
        binary,
        "--headless",
        "--no-sandbox",  # root in CI; the page is our own loopback server
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        f"--user-data-dir={profile_dir}",
        f"--window-size={window[0]},{window[1]}",
        f"--virtual-time-budget={virtual_time_budget_ms}",
    ]


def _run_chromium(argv: list[str], url: str, timeout_s: float) -> tuple[int, bytes, bytes]:
    """Run one headless Chromium command in its own process group and reap every helper
    process (zygote, renderer, GPU) it started, whatever happens."""
    proc = subprocess.Popen(
        [*argv, url],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise UiTestError(f"chromium did not finish with {url} in {timeout_s:.0f}s") from None
    finally:
        stop_group(proc, grace_s=2.0)  # also Chromium's helpers left behind by its leader
    return proc.returncode, out, err


def screenshot(
    url: str,
    out: Path,
    profile_dir: Path,
    *,
    virtual_time_budget_ms: int = 15_000,
    window: tuple[int, int] = (1400, 1000),
    timeout_s: float = 120.0,
) -> Path:
    """Save a PNG of ``url`` as headless Chromium renders it in a ``window``-sized viewport."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    argv = [*_chromium_argv(profile_dir, virtual_time_budget_ms, window), f"--screenshot={out}"]
    code, _, err = _run_chromium(argv, url, timeout_s)
    if code != 0 or not out.exists():
        text = err.decode("utf-8", errors="replace")[-3000:]
        raise UiTestError(f"chromium exited {code} without a screenshot of {url}:\n{text}")
    return out


def rendered_dom(
    url: str,
    profile_dir: Path,
    *,
    virtual_time_budget_ms: int = 15_000,
    window: tuple[int, int] = (1400, 1000),
    timeout_s: float = 120.0,
) -> str:
    """The page's DOM after the same rendering as :func:`screenshot`: what a test can assert
    on to know a screenshot shows data and not a loading state."""
    argv = [*_chromium_argv(profile_dir, virtual_time_budget_ms, window), "--dump-dom"]
    code, out, err = _run_chromium(argv, url, timeout_s)
    if code != 0:
        text = err.decode("utf-8", errors="replace")[-3000:]
        raise UiTestError(f"chromium exited {code} dumping the DOM of {url}:\n{text}")
    return out.decode("utf-8", errors="replace")


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; raises if the file is not a PNG."""
    head = path.read_bytes()[:24]
    if not head.startswith(PNG_MAGIC) or head[12:16] != b"IHDR":
        raise UiTestError(f"{path} is not a PNG")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
