"""The simulator's ``/_admin/*`` endpoints (listed in ``server.py``): control for a simulator that
runs in another process."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qs

from .faults import (
    FaultRule,
)
from .http import (
    _BadRequest,
    _Handler,
    _json_bytes,
    _read_body,
    _send,
)


class AdminApi:
    """Part of :class:`~payout_standins.goldsky.server.Simulator`: its admin endpoints."""

    def _handle_admin(self, handler: _Handler, method: str, path: str, query_string: str) -> None:
        try:
            body = _read_body(handler)
            status, obj = self._admin(method, path.rstrip("/"), query_string, body)
        except _BadRequest as exc:
            status, obj = 400, {"error": str(exc)}
        except (ValueError, TypeError, KeyError) as exc:
            status, obj = 400, {"error": f"{type(exc).__name__}: {exc}"}
        _send(handler, status, _json_bytes(obj))

    def _admin(self, method: str, path: str, query_string: str, body: bytes) -> tuple[int, Any]:
        route = path[len("/_admin/") :]
        data: Any = json.loads(body) if body.strip() else None
        if (method, route) == ("GET", "stats"):
            return 200, self.stats()
        if (method, route) == ("GET", "requests"):
            params = parse_qs(query_string)
            limit = int(params.get("limit", ["100"])[0])
            return 200, {"requests": [r.to_json() for r in self.traffic.records(limit)]}
        if route == "faults":
            if method == "GET":
                return 200, {"rules": [r.describe() for r in self.faults.rules]}
            if method == "POST":
                items = data if isinstance(data, list) else [data]
                rules = [FaultRule.from_json(item) for item in items]
                return 200, {"rules": [self.faults.add_rule(r).describe() for r in rules]}
            if method == "DELETE":
                self.faults.clear()
                return 200, {"rules": []}
        if route == "overrides":
            if method == "POST":
                items = data.get("overrides") if isinstance(data, dict) else data
                if not isinstance(items, list):
                    raise ValueError("expected a list of overrides")
                for item in items:
                    self._apply_override_json(item)
                return 200, {"overrides": len(self.universe.overrides)}
            if method == "DELETE":
                self.universe.clear_overrides()
                return 200, {"overrides": 0}
            if method == "GET":
                return 200, {
                    "overrides": [_override_json(o) for o in self.universe.overrides.values()]
                }
        if route == "head":
            if method == "POST":
                if not isinstance(data, dict):
                    raise ValueError("expected an object")
                if data.get("head_block") is not None:
                    self.universe.set_head(int(data["head_block"]))
                if data.get("advance_per_request") is not None:
                    self.advance_per_request = int(data["advance_per_request"])
            if method in ("GET", "POST"):
                return 200, {
                    "head_block": self.universe.head,
                    "advance_per_request": self.advance_per_request,
                }
        if (method, route) == ("POST", "reset"):
            self.traffic.reset()
            if self.rate_limiter is not None:
                self.rate_limiter.reset()
            return 200, {"reset": True}
        if (method, route) == ("POST", "rate_limit"):
            if not isinstance(data, dict):
                raise ValueError("expected an object")
            requests = data.get("requests")
            self.set_rate_limit(
                None if requests is None else int(requests), float(data.get("window_s", 1.0))
            )
            return 200, {"rate_limit": self.stats()["rate_limit"]}
        if (method, route) == ("POST", "latency"):
            if not isinstance(data, dict):
                raise ValueError("expected an object")
            self.set_latency(float(data.get("latency_ms", 0.0)), float(data.get("jitter_ms", 0.0)))
            return 200, {"latency_ms": self.latency_ms, "jitter_ms": self.jitter_ms}
        if (method, route) == ("GET", "config"):
            cfg = asdict(self.config)
            cfg.pop("api_key", None)
            return 200, {"config": cfg, "url": self.url, "head_block": self.universe.head}
        return 404, {"error": f"no admin route {method} {path}"}

    def _apply_override_json(self, item: Any) -> None:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise ValueError("each override needs a string 'id'")
        allowed = {
            "id",
            "numerators",
            "denominator",
            "payouts",
            "resolution_timestamp",
            "position_ids",
            "from_block",
            "present",
        }
        unknown = set(item) - allowed
        if unknown:
            raise ValueError(f"unknown override keys: {sorted(unknown)}")
        self.universe.set_override(
            item["id"],
            item.get("numerators"),
            item.get("denominator"),
            payouts=item.get("payouts", ...),
            resolution_timestamp=item.get("resolution_timestamp", ...),
            position_ids=item.get("position_ids"),
            from_block=item.get("from_block"),
            present=bool(item.get("present", True)),
        )


def _override_json(override: Any) -> dict[str, Any]:
    out = asdict(override)
    for key in ("payouts", "resolution_timestamp"):
        if out[key] is Ellipsis:
            out[key] = "derived"
    return out
