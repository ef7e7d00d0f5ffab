"""Prometheus plumbing shared by the HTTP services: one registry per service, bounded labels.

HTTP series are labelled by route template (`/v1/subjects/{subject_id}`), never by raw path,
so a subject id can never become a label value.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from starlette.routing import Match

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def route_template(request: Request) -> str:
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


def instrument_http(app: FastAPI, registry: CollectorRegistry, service: str) -> None:
    """Add request-latency metrics by route template and a `/metrics` endpoint."""
    latency = Histogram(
        "samtykke_http_request_duration_seconds",
        "HTTP request latency by route template",
        ["service", "method", "route", "status"],
        registry=registry,
        buckets=LATENCY_BUCKETS,
    )

    @app.middleware("http")
    async def _measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        latency.labels(service, request.method, route_template(request), str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response

    @app.get("/metrics", include_in_schema=False)
    async def _metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
