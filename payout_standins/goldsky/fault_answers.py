"""How an injected fault turns into an answer: before execution (HTTP errors, graph-node's
messages, gateway pages) or after it (partial data, repeated or unrequested rows)."""

from __future__ import annotations

from typing import Any

from .config import (
    _HTML_PAGES,
)
from .faults import (
    ALLOWANCE_MESSAGE,
    INDEXING_ERROR_MESSAGE,
    OVERLOADED_MESSAGE,
    TIMEOUT_MESSAGE,
    FaultKind,
    FaultRule,
    RequestInfo,
)
from .http import (
    _Answer,
    _errors_answer,
    _row_id,
)


class FaultAnswers:
    """Part of :class:`~payout_standins.goldsky.server.Simulator`: the answers its fault rules produce."""

    def _pre_execution_fault(self, fault: FaultRule) -> _Answer:
        kind = fault.kind
        if kind == FaultKind.HTTP_429:
            answer = _Answer(
                status=429,
                body=b"Too Many Requests",
                content_type="text/plain; charset=utf-8",
                errors=["Too Many Requests"],
            )
            if fault.retry_after is not None:
                value = fault.retry_after
                shown = str(int(value)) if float(value).is_integer() else f"{value:g}"
                answer.headers.append(("Retry-After", shown))
            return answer
        if kind == FaultKind.ALLOWANCE:
            return _Answer(
                status=fault.status or 200,
                body=ALLOWANCE_MESSAGE.encode(),
                content_type="text/plain; charset=utf-8",
                errors=[ALLOWANCE_MESSAGE],
            )
        if kind == FaultKind.HTML_ERROR:
            status = fault.status or 502
            title = _HTML_PAGES.get(status, f"{status} Error")
            page = (
                f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
                f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
                "</body>\r\n</html>\r\n"
            )
            return _Answer(
                status=status,
                body=page.encode(),
                content_type="text/html",
                errors=[title],
            )
        if kind == FaultKind.INDEXING_ERROR:
            return _errors_answer(INDEXING_ERROR_MESSAGE)
        if kind == FaultKind.TIMEOUT:
            return _errors_answer(TIMEOUT_MESSAGE)
        if kind == FaultKind.OVERLOADED:
            return _errors_answer(OVERLOADED_MESSAGE)
        if kind == FaultKind.GRAPHQL_ERROR:
            return _errors_answer(fault.message or "Store error: simulated failure")
        if kind == FaultKind.DROP:
            return _Answer(status=0, mode="drop", reset=fault.reset)
        raise AssertionError(f"not a pre-execution fault: {kind}")  # pragma: no cover

    def _apply_data_fault(
        self, fault: FaultRule, payload: dict[str, Any], rows: list[str], info: RequestInfo
    ) -> list[str]:
        """Corrupt an executed answer in place; returns the ids it now contains."""
        data = payload.get("data")
        lists: dict[str, list[Any]] = (
            {k: v for k, v in data.items() if isinstance(v, list)} if isinstance(data, dict) else {}
        )
        if fault.kind == FaultKind.PARTIAL:
            kept: list[str] = []
            for key, items in lists.items():
                data[key] = items[: int(len(items) * fault.keep)]
                kept.extend(_row_id(r) for r in data[key])
            payload.setdefault("errors", []).append(
                {"message": fault.message or INDEXING_ERROR_MESSAGE}
            )
            return kept
        for items in lists.values():
            if fault.kind == FaultKind.DUPLICATE_ROWS and items:
                items.append(dict(items[0]))
                rows.append(_row_id(items[0]))
            elif fault.kind == FaultKind.UNREQUESTED_ROWS:
                extra = self._unrequested_row(items, info)
                if extra is not None:
                    items.append(extra)
                    rows.append(_row_id(extra))
        return rows

    def _unrequested_row(self, items: list[Any], info: RequestInfo) -> dict[str, Any] | None:
        """A plausible row for a known id that the request did not ask for."""
        universe = self.universe
        if universe.size == 0:
            return None
        taken = set(info.ids) | {_row_id(r) for r in items}
        start = (len(taken) * 7919 + universe.size // 2) % universe.size
        for step in range(min(universe.size, 256)):
            cid = universe.condition_id((start + step * 104_729) % universe.size)
            state = universe.state(cid)
            if cid in taken or state is None:
                continue
            full = state.to_pnl() if self.dialect == "pnl" else state.to_legacy()
            if not items:
                return full
            template = items[0]
            old_id = _row_id(template)
            return {key: (cid if value == old_id else value) for key, value in template.items()}
        return None
