"""The outermost layer of our own around every HTTP request (a plain ASGI middleware):

- a request id: `X-Request-ID` accepted when sane (1-128 of `A-Z a-z 0-9 . _ : - + = /`), else generated;
  echoed on every response, put in error bodies and in every log line of the request (`api.logs.REQUEST_ID`);
- the request body read with a total cap and a read timeout (`BodyLimits`): 413 / 408, nothing after the cap
  is read;
- any exception nothing else handled answers 500 with the JSON envelope (`internal_error`), logged with its
  traceback;
- one JSON access-log line per request (method, route template, status, duration, request id, a hash of the
  API key) and the HTTP metrics (duration histogram, in-flight gauge, per route template).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ERROR_STATUS, ApiError, error_body
from .logs import REQUEST_ID

log = logging.getLogger("api.access")
REQUEST_ID_HEADER = b"x-request-id"
REQUEST_ID_PATTERN = re.compile(rb"[A-Za-z0-9._:\-+=/]{1,128}")
UNMATCHED_ROUTE = "(unmatched)"  # one label for every unknown path: clients cannot grow the metric's labels
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # others: "OTHER"


@dataclass(frozen=True)
class BodyLimits:
    max_bytes: int  # the whole body: the sum of the part limits plus a margin
    idle_timeout_s: float  # longest wait for the next chunk
    total_timeout_s: float  # longest time to receive the whole body


class BodyGuard:
    """Wraps `receive`: counts body bytes and times each wait until the body is complete."""

    def __init__(self, receive: Receive, limits: BodyLimits):
        self._receive, self.limits = receive, limits
        self.received, self.complete = 0, False
        self._deadline = time.monotonic() + limits.total_timeout_s

    async def __call__(self) -> Message:
        if self.complete:  # only http.disconnect is left to wait for, however long it takes
            return await self._receive()
        wait_s = min(self.limits.idle_timeout_s, self._deadline - time.monotonic())
        try:
            message = await asyncio.wait_for(self._receive(), max(wait_s, 0.001))
        except TimeoutError:
            raise ApiError("request_timeout", "the request body arrived too slowly (no data for "
                           f"{self.limits.idle_timeout_s:g} s, or not complete within "
                           f"{self.limits.total_timeout_s:g} s)") from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limits.max_bytes:
                raise ApiError("payload_too_large",
                               f"the request body is over the limit of {self.limits.max_bytes} bytes")
            self.complete = not message.get("more_body", False)
        else:
            self.complete = True
        return message


def request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER and REQUEST_ID_PATTERN.fullmatch(value):
            return value.decode("ascii")
    return uuid.uuid4().hex


def key_id_of(scope: Scope) -> str | None:
    """A short hash of the presented API key (the owner id's prefix), never the key itself."""
    from .deps import owner_id

    for name, value in scope.get("headers", []):
        if name == b"x-api-key":
            return owner_id(value.decode("latin-1"))[:12]
    return None


def route_template(scope: Scope) -> str | None:
    """The matched route's path template (/v1/jobs/{job_id}); the router sets it in the scope."""
    route = scope.get("route")
    return getattr(route, "path", None) if route is not None else None


class RouteTemplates:
    """Path -> route template before the router runs (so the in-flight gauge counts a request from its start);
    built on first use from the app's route paths."""

    def __init__(self, paths: Callable[[], list[str]]):
        self._paths = paths
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None

    def find(self, path: str) -> str | None:
        if self._compiled is None:
            self._compiled = [(compile_path(template)[0], template) for template in dict.fromkeys(self._paths())
                              if template]
        return next((template for regex, template in self._compiled if regex.match(path)), None)


class _InFlight:
    """Counts a request in the in-flight gauge from its start when its route is known, else from the moment
    the router has set it."""

    def __init__(self, metrics: Any, scope: Scope, template: str | None):
        self.metrics, self.scope, self.route = metrics, scope, None
        self.method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
        self._count(template)

    def _count(self, route: str | None) -> None:
        if self.route is None and self.metrics is not None and route:
            self.route = route
            self.metrics.http_in_flight.labels(self.method, route).inc()

    def update(self) -> None:
        if self.route is None:
            self._count(route_template(self.scope))

    def done(self, status: int, duration_s: float) -> str:
        route = self.route or route_template(self.scope) or UNMATCHED_ROUTE
        if self.metrics is not None:
            if self.route is not None:
                self.metrics.http_in_flight.labels(self.method, self.route).dec()
            self.metrics.http_seconds.labels(self.method, route, str(status)).observe(duration_s)
        return route


class RequestMiddleware:
    """See the module docstring. `metrics` returns the app's Metrics once the lifespan made them (or None)."""

    def __init__(self, app: ASGIApp, *, limits: BodyLimits, metrics: Callable[[], Any],
                 route_paths: Callable[[], list[str]]):
        self.app, self.limits, self.metrics = app, limits, metrics
        self.templates = RouteTemplates(route_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        token = REQUEST_ID.set(request_id)
        started, status = time.monotonic(), 0
        in_flight = _InFlight(self.metrics(), scope, self.templates.find(scope.get("path", "")))
        guard = BodyGuard(receive, self.limits)

        async def receive_guarded() -> Message:
            in_flight.update()
            return await guard()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            in_flight.update()
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != REQUEST_ID_HEADER]
                message = {**message, "headers": [*headers, (REQUEST_ID_HEADER, request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive_guarded, send_with_id)
        except ApiError as e:  # raised outside a route (the body guard while nothing else read): its own status
            if status:
                raise
            status = ERROR_STATUS.get(e.code, 500)
            await send_json(send_with_id, status, error_body(e.code, e.message))
        except Exception:
            log.exception("unhandled error in %s %s", scope["method"], scope.get("path"))
            if status:  # the answer had begun: nothing else can be sent
                raise
            status = 500
            await send_json(send_with_id, 500, error_body(
                "internal_error", f"an unexpected error occurred; quote request id {request_id} when reporting it"))
        finally:
            duration_s = time.monotonic() - started
            route = in_flight.done(status, duration_s)
            log.info("%s %s %s", scope["method"], route, status, extra={"fields": {
                "method": scope["method"], "route": route, "path": scope.get("path"), "status": status,
                "duration_ms": round(duration_s * 1000, 1), "key_id": key_id_of(scope)}})
            REQUEST_ID.reset(token)


async def send_json(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] = ()) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *headers]})
    await send({"type": "http.response.body", "body": payload})
