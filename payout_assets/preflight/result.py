"""A preflight's report: one row per check, and the scrubbing of secrets before anyone sees it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from urllib.parse import urlsplit

from payout_assets.redact import redact
from payout_assets.sources.goldsky.client import (
    ClientSettings,
)


class Status(StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class CheckResult:
    """One line of the preflight report; ``fix`` says what to do when it is not PASS."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "status": str(self.status),
            "detail": self.detail,
            "fix": self.fix,
        }


def passed(name: str, detail: str) -> CheckResult:
    return CheckResult(name, Status.PASS, detail)


def warned(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, Status.WARN, detail, fix)


def failed(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, Status.FAIL, detail, fix)


def dsn_secrets(dsn: str) -> list[str]:
    """The parts of a DSN that must never be printed (its password)."""
    try:
        password = urlsplit(dsn).password
    except ValueError:  # an unparseable DSN: redact()'s URL masking in scrub() still applies
        return []
    return [password] if password else []


def settings_secrets(settings: ClientSettings | None) -> list[str]:
    if settings is None:
        return []
    values = [settings.api_key or "", *settings.headers.values()]
    return [v for v in values if len(v) >= 4]


def scrub(results: Iterable[CheckResult], secrets: Sequence[str]) -> list[CheckResult]:
    """The results with every secret (and any ``user:password@`` in a URL) replaced by ``***``."""
    return [
        replace(r, detail=redact(r.detail, secrets), fix=redact(r.fix, secrets)) for r in results
    ]


def summary(results: Sequence[CheckResult]) -> dict[Status, int]:
    return {s: sum(1 for r in results if r.status is s) for s in Status}


def ok(results: Sequence[CheckResult]) -> bool:
    return not any(r.status is Status.FAIL for r in results)
