"""Prometheus plumbing shared by the HTTP services: one registry per service, bounded labels.

HTTP series are labelled by route template (`/v1/subjects/{subject_id}`), never by raw path,
so a subject id can never become a label value. The middleware is plain ASGI (no per-request
task or body buffering), because it sits on every request of the hot check paths.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# commit -> applied somewhere downstream; fine around the 250 ms objective, wide for backlogs
PROPAGATION_BUCKETS = (
    0.005,
    0.01,
    0.015,
    0.02,
    0.03,
    0.04,
    0.05,
    0.06,
    0.08,
    0.1,
    0.125,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)


def service_registry() -> CollectorRegistry:
    """A service's own registry, with the process series (CPU seconds, resident memory, open fds)
    and the Python platform info every dashboard row uses."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def route_template(scope: Scope) -> str:
    """The matched route's template; routing records it in the shared scope."""
    route: Any = scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")


class RequestLatencyMiddleware:
    def __init__(self, app: ASGIApp, latency: Histogram, service: str) -> None:
        self.app = app
        self.latency = latency
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.latency.labels(self.service, scope["method"], route_template(scope), str(status)).observe(
                time.perf_counter() - started
            )


def instrument_http(app: FastAPI, registry: CollectorRegistry, service: str) -> None:
    """Add request-latency metrics by route template and a `/metrics` endpoint."""
    latency = Histogram(
        "samtykke_http_request_duration_seconds",
        "HTTP request latency by route template",
        ["service", "method", "route", "status"],
        registry=registry,
        buckets=LATENCY_BUCKETS,
    )
    app.add_middleware(RequestLatencyMiddleware, latency=latency, service=service)

    @app.get("/metrics", include_in_schema=False)
    async def _metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
