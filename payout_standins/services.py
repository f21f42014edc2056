"""PostgreSQL 15 and redis-server from Debian, each started on a free loopback port in its own
temp dir and stopped afterwards: the shared services of a several-hosts deployment, for the
tests (``payout_assets_tests/deploy``).

These are the real servers (``scripts/install-system-deps.sh`` installs them); the packages'
own system services are never used, so nothing is assumed to be running.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from payout_standins.polygon.chain import free_port
from payout_standins.procs import stop_group

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "postgres"  # PostgreSQL refuses to run as root; Debian's package creates this user
START_TIMEOUT_S = 30.0


class ServiceMissing(RuntimeError):
    """A server binary is not installed: ``bash scripts/install-system-deps.sh`` installs it."""


def _need(path: Path | str | None, package: str) -> str:
    if path is None or not Path(path).exists():
        raise ServiceMissing(
            f"{package} is not installed; run `bash scripts/install-system-deps.sh` (apt)"
        )
    return str(path)


def _as_service_user(args: list[str]) -> list[str]:
    """``args`` run as the postgres user when this process is root, else as this user."""
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", PG_USER, "--", *args]


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _listening(port):
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if _listening(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"server did not listen on 127.0.0.1:{port}: {log.read_text()[-2000:]}")


def _listening(port: int) -> bool:
    return any(
        c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
        for c in psutil.net_connections("tcp4")
    )


@contextmanager
def postgres() -> Iterator[str]:
    """A fresh PostgreSQL 15 cluster on a free port; yields its URL (database ``dagster``)."""
    initdb = _need(PG_BIN / "initdb", "postgresql-15")
    root = Path(tempfile.mkdtemp(prefix="payout-pg-"))
    data, log = root / "data", root / "postgres.log"
    if os.geteuid() == 0:
        user = pwd.getpwnam(PG_USER)
        os.chown(root, user.pw_uid, user.pw_gid)
    port = free_port()
    proc: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            _as_service_user(
                [initdb, "-D", str(data), "-U", "dagster", "--auth=trust", "-E", "UTF8"]
            ),
            check=True,
            capture_output=True,
        )
        with log.open("ab") as out:
            proc = subprocess.Popen(
                _as_service_user(
                    [
                        str(PG_BIN / "postgres"),
                        "-D",
                        str(data),
                        "-p",
                        str(port),
                        "-c",
                        "listen_addresses=127.0.0.1",
                        "-c",
                        f"unix_socket_directories={root}",
                        "-c",
                        "fsync=off",
                        "-c",
                        "max_connections=200",
                    ]
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_port(port, proc, log)
        subprocess.run(
            [
                str(PG_BIN / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "dagster",
                "dagster",
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql://dagster@127.0.0.1:{port}/dagster"
    finally:
        if proc is not None:
            # SIGINT is PostgreSQL's "fast shutdown": it ends every session and stops
            stop_group(proc, signal.SIGINT)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def redis() -> Iterator[str]:
    """A redis-server on a free port with no persistence; yields its URL."""
    server = _need(shutil.which("redis-server"), "redis-server")
    root = Path(tempfile.mkdtemp(prefix="payout-redis-"))
    port, log = free_port(), root / "redis.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(root),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_port(port, proc, log)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_group(proc, signal.SIGTERM)
        shutil.rmtree(root, ignore_errors=True)
