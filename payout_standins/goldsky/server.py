"""Local Goldsky / graph-node simulator: an HTTP GraphQL server on 127.0.0.1.

Why a real server: the backfill's hardest behaviour lives in the transport (retries,
rate limits, pinned blocks, paging limits), so the demo, the tests and the benchmark
need something that speaks HTTP and GraphQL the way Goldsky's graph-node does, without
network access. Queries are parsed, validated and executed by graphql-core against the
same SDL files the client validates with (``payout_assets/sources/goldsky/schemas``); resolvers
apply graph-node's rules (``first`` default 100 / max 1000, ``skip`` cap, default id
order, ``where`` filters, time travel and its beyond-head error, ``_meta``), and errors
use graph-node's wording and status codes (200 with ``errors``; 400 only for malformed
requests).

Control: the Python API (:class:`Simulator`, :func:`run_simulator`) for in-process use,
and ``/_admin/*`` HTTP endpoints on the same port for a simulator in another process.
Admin endpoints are not subject to the API key and are not recorded as traffic:

- ``GET /_admin/stats`` -> traffic statistics + head/settings (see ``TrafficLog.stats``)
- ``GET /_admin/requests?limit=N`` -> ``{"requests": [record, ...]}`` (oldest first)
- ``GET|POST|DELETE /_admin/faults`` -> list / add (one rule object or a list; see
  ``FaultRule.from_json``) / clear; answers ``{"rules": [...]}``
- ``GET|POST|DELETE /_admin/overrides`` -> POST a list (or ``{"overrides": [...]}``) of
  ``{"id", "numerators", "denominator", "payouts"?, "resolution_timestamp"?,
  "position_ids"?, "from_block"?, "present"?}``; omitted ``payouts`` /
  ``resolution_timestamp`` are derived
- ``GET|POST /_admin/head`` -> ``{"head_block"?: N, "advance_per_request"?: M}``
- ``POST /_admin/rate_limit`` -> ``{"requests": N | null, "window_s": S}``
- ``POST /_admin/latency`` -> ``{"latency_ms": M, "jitter_ms": J}``
- ``POST /_admin/reset`` -> clears the traffic log and the limiter window
- ``GET /_admin/config`` -> the configuration (without the API key) and the URL

Malformed admin input gets HTTP 400 ``{"error": ...}``.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Awaitable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from types import FrameType
from typing import Any, TextIO

import graphql

from .admin import (
    AdminApi,
)
from .config import (
    _MODE_NOTES,
    _PROJECT_ID,
    _SUBGRAPHS,
    DEPLOYMENT_ID,
    SCHEMA_DIR,
    Dialect,
    SimulatorConfig,
    _log,
)
from .execution import (
    _ExecContext,
    _execution_schema,
    load_schema,
)
from .fault_answers import (
    FaultAnswers,
)
from .faults import (
    ALLOWANCE_MESSAGE,
    PRE_EXECUTION_KINDS,
    FaultKind,
    FaultPlan,
    FaultRule,
    RateLimiter,
    RequestInfo,
)
from .http import (
    _Answer,
    _BadRequest,
    _check_loopback,
    _errors_answer,
    _Handler,
    _json_bytes,
    _read_body,
    _send,
    _Server,
)
from .parsing import (
    _extract_info,
    _format_error,
    _prepare,
    _Prepared,
)
from .traffic import TrafficLog
from .universe import (
    Universe,
)

__all__ = [
    "DEPLOYMENT_ID",
    "SCHEMA_DIR",
    "Dialect",
    "Simulator",
    "SimulatorConfig",
    "load_schema",
    "run_simulator",
    "serve_forever",
]


# --------------------------------------------------------------------------- simulator
class Simulator(AdminApi, FaultAnswers):
    """A running (or startable) simulator: data, faults, traffic log and HTTP server."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        cfg = self.config
        _check_loopback(cfg.host)
        _execution_schema(cfg.dialect)
        self.dialect: Dialect = cfg.dialect
        self.universe = Universe(
            cfg.size,
            seed=cfg.seed,
            resolved_share=cfg.resolved_share,
            split_share=cfg.split_share,
            head_block=cfg.head_block,
        )
        self.faults = FaultPlan(seed=cfg.fault_seed)
        self.traffic = TrafficLog(self.universe.index_of, cfg.size, keep=cfg.record_limit)
        self.rate_limiter: RateLimiter | None = (
            RateLimiter(*cfg.rate_limit) if cfg.rate_limit is not None else None
        )
        self.advance_per_request = cfg.advance_per_request
        self.latency_ms = cfg.latency_ms
        self.jitter_ms = cfg.jitter_ms
        self._rng = random.Random(cfg.seed ^ 0x5EED)
        self._rng_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- lifecycle
    def start(self) -> Simulator:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        server = _Server((self.config.host, self.config.port), self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"goldsky-simulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open keep-alive connections and release the port."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------- addresses
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("simulator is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def url(self) -> str:
        """Goldsky-shaped endpoint URL, ending in ``/gn``."""
        name, version = _SUBGRAPHS[self.dialect]
        return f"{self.base_url}/api/public/{_PROJECT_ID}/subgraphs/{name}/{version}/gn"

    def admin_url(self, path: str) -> str:
        return f"{self.base_url}/_admin/{path.lstrip('/')}"

    # ------------------------------------------------------------- controls
    def set_head(self, block: int) -> None:
        self.universe.set_head(block)

    def set_rate_limit(self, requests: int | None, window_s: float = 1.0) -> None:
        self.rate_limiter = None if requests is None else RateLimiter(requests, window_s)

    def set_latency(self, latency_ms: float, jitter_ms: float = 0.0) -> None:
        if latency_ms < 0 or jitter_ms < 0:
            raise ValueError("latency and jitter must be >= 0")
        self.latency_ms, self.jitter_ms = latency_ms, jitter_ms

    def stats(self) -> dict[str, Any]:
        """Traffic statistics plus the simulator's current head and settings."""
        out = self.traffic.stats()
        limiter = self.rate_limiter
        out.update(
            head_block=self.universe.head,
            dialect=self.dialect,
            size=self.universe.size,
            fault_rules=len(self.faults.rules),
            rate_limit=None if limiter is None else [limiter.requests, limiter.window_s],
        )
        return out

    # ------------------------------------------------------------- dispatch
    def dispatch(self, handler: _Handler) -> None:
        path, _, query_string = handler.path.partition("?")
        method = handler.command
        if path.startswith("/_admin/"):
            self._handle_admin(handler, method, path, query_string)
        elif path == "/" or path.endswith("/gn"):
            if method == "POST":
                self._handle_graphql(handler, path)
            else:
                _read_body_quietly(handler)
                _send(
                    handler,
                    405,
                    _json_bytes({"errors": [{"message": "use POST for GraphQL queries"}]}),
                    headers=[("Allow", "POST")],
                )
        else:
            _read_body_quietly(handler)
            _send(handler, 404, _json_bytes({"errors": [{"message": f"no route {path}"}]}))

    # ------------------------------------------------------------- GraphQL
    def _handle_graphql(self, handler: _Handler, path: str) -> None:
        seq, arrived = self.traffic.begin()
        info = RequestInfo(path=path, authorization="Authorization" in handler.headers)
        fault: FaultRule | None = None
        rate_limited = False
        collections = 0
        try:
            try:
                body = _read_body(handler)
            except _BadRequest as exc:
                answer = _errors_answer(str(exc), status=400)
            else:
                answer, info, fault, rate_limited, collections = self._answer(handler, body, info)
        except Exception:  # a simulator bug must still be answered and logged
            _log.exception("simulator failed to answer a GraphQL request")
            answer = _errors_answer("internal simulator error", status=500)
        delay = answer.delay_s + self._latency_s()
        if delay > 0:
            time.sleep(delay)
        # Record before writing: a client that reads the stats right after receiving
        # its response must find its own request there. Recorded before it stops counting as
        # in flight, so "nothing in flight" means every arrived request is in the stats.
        try:
            record = self.traffic.record(
                seq=seq,
                arrived=arrived,
                info=info,
                status=None if answer.mode == "drop" else answer.status,
                fault=fault,
                rate_limited=rate_limited,
                rows=answer.rows,
                errors=answer.errors,
                collection_fields=collections,
                note=_MODE_NOTES.get(answer.mode),
            )
        finally:
            self.traffic.end()
        try:
            self._write(handler, answer)
        except OSError as exc:
            record.note = f"client connection lost: {type(exc).__name__}"
            handler.close_connection = True

    def _answer(
        self, handler: _Handler, body: bytes, info: RequestInfo
    ) -> tuple[_Answer, RequestInfo, FaultRule | None, bool, int]:
        """Decide the answer: auth, malformed request, rate limit, faults, execution."""
        cfg = self.config
        problem: str | None = None
        query = ""
        variables: dict[str, Any] = {}
        operation_name: str | None = None
        try:
            payload = json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError):
            payload = None
            problem = "request body is not valid JSON"
        if problem is None:
            if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
                problem = "the request must be a JSON object with a string `query`"
            elif not isinstance(payload.get("variables") or {}, dict):
                problem = "`variables` must be a JSON object"
            elif not isinstance(payload.get("operationName") or "", str):
                problem = "`operationName` must be a string"
            else:
                query = payload["query"]
                variables = payload.get("variables") or {}
                operation_name = payload.get("operationName") or None
                if not query.strip():
                    problem = "The query is empty"

        prepared = _prepare(cfg.dialect, query) if problem is None else None
        collections = 0
        if prepared is not None:
            info, collections = _extract_info(
                prepared.document, variables, operation_name, replace(info, query=query)
            )
        head = (
            self.universe.advance(self.advance_per_request)
            if self.advance_per_request
            else self.universe.head
        )

        if cfg.api_key is not None:
            expected = f"Bearer {cfg.api_key}"
            if handler.headers.get("Authorization") != expected:
                answer = _errors_answer("Unauthorized", status=401)
                answer.headers.append(("WWW-Authenticate", "Bearer"))
                return answer, info, None, False, collections
        if problem is not None or prepared is None:
            answer = _errors_answer(problem or "bad request", status=400)
            return answer, info, None, False, collections
        limiter = self.rate_limiter
        if limiter is not None and not limiter.allow():
            answer = _Answer(
                status=429,
                body=ALLOWANCE_MESSAGE.encode(),
                content_type="text/plain; charset=utf-8",
                errors=[ALLOWANCE_MESSAGE],
            )
            return answer, info, None, True, collections

        fault = self.faults.choose(info)
        if fault is not None and fault.kind in PRE_EXECUTION_KINDS:
            return self._pre_execution_fault(fault), info, fault, False, collections

        if prepared.errors:
            answer = _Answer(
                status=200,
                body=_json_bytes({"errors": [dict(e) for e in prepared.errors]}),
                errors=[e["message"] for e in prepared.errors],
            )
        else:
            answer = self._execute(prepared, variables, operation_name, head, fault, info)
        if fault is not None and fault.kind == FaultKind.SLOW:
            answer.delay_s += fault.delay_s
        if fault is not None and fault.kind == FaultKind.TRUNCATE:
            answer.mode = "truncate_body" if fault.mode == "body" else "truncate_connection"
        return answer, info, fault, False, collections

    def _execute(
        self,
        prepared: _Prepared,
        variables: dict[str, Any],
        operation_name: str | None,
        head: int,
        fault: FaultRule | None,
        info: RequestInfo,
    ) -> _Answer:
        assert prepared.document is not None
        ctx = _ExecContext(
            universe=self.universe,
            dialect=self.dialect,
            head=head,
            max_first=self.config.max_first,
            skip_cap=self.config.skip_cap,
            meta_indexing_errors=fault is not None and fault.kind == FaultKind.META_INDEXING_ERRORS,
            deployment=self.config.deployment,
        )
        result = graphql.execute(
            _execution_schema(self.dialect),
            prepared.document,
            context_value=ctx,
            variable_values=variables,
            operation_name=operation_name,
        )
        assert not isinstance(result, Awaitable), "resolvers are synchronous"
        payload: dict[str, Any] = {}
        if result.data is not None:
            payload["data"] = result.data
        if result.errors:
            # graph-node stops at the first failing block constraint shared by several root
            # fields, so identical messages are reported once.
            formatted = [_format_error(e, locations=False) for e in result.errors]
            unique = {e["message"]: e for e in formatted}
            payload["errors"] = list(unique.values())
        rows = list(ctx.returned)
        if fault is not None:
            rows = self._apply_data_fault(fault, payload, rows, info)
        errors = [e["message"] for e in payload.get("errors", [])]
        return _Answer(status=200, body=_json_bytes(payload), rows=rows, errors=errors)

    def _write(self, handler: _Handler, answer: _Answer) -> None:
        """Write the answer, or misbehave as the answer's mode says."""
        if answer.mode == "drop":
            handler.close_connection = True
            if answer.reset:
                with contextlib.suppress(OSError):
                    handler.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
            return
        body = answer.body
        truncated = answer.mode in ("truncate_body", "truncate_connection")
        _send(
            handler,
            answer.status,
            body[: len(body) // 2] if truncated else body,
            content_type=answer.content_type,
            headers=answer.headers,
            announce=len(body) if answer.mode == "truncate_connection" else None,
            close=answer.mode == "truncate_connection" or answer.status in (400, 500),
        )

    def _latency_s(self) -> float:
        mean, jitter = self.latency_ms, self.jitter_ms
        if mean <= 0 and jitter <= 0:
            return 0.0
        with self._rng_lock:
            offset = self._rng.uniform(-jitter, jitter) if jitter > 0 else 0.0
        return max(0.0, mean + offset) / 1000.0


def _read_body_quietly(handler: BaseHTTPRequestHandler) -> None:
    try:
        _read_body(handler)
    except _BadRequest:
        handler.close_connection = True


# --------------------------------------------------------------------------- entry points
@contextlib.contextmanager
def run_simulator(config: SimulatorConfig | None = None, **overrides: Any) -> Iterator[Simulator]:
    """Start a simulator in a background thread for the duration of a ``with`` block.

    ``overrides`` replace fields of ``config`` (e.g. ``run_simulator(size=1000)``).
    """
    cfg = replace(config or SimulatorConfig(), **overrides)
    sim = Simulator(cfg).start()
    try:
        yield sim
    finally:
        sim.stop()


def serve_forever(config: SimulatorConfig | None = None, *, out: TextIO | None = None) -> None:
    """Run a simulator until SIGTERM/SIGINT; prints exactly one line: the endpoint URL.

    Used by ``python -m payout_standins simulate``; scripts read the URL from the first stdout
    line and control the simulator through ``/_admin/*``.
    """
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _on_signal)
    sim = Simulator(config).start()
    try:
        print(sim.url, file=out or sys.stdout, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
