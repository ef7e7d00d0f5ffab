"""Composition root of the suppression service: index, topic feed, gate, HTTP API, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from samtykke.adapters.auth import Authenticator
from samtykke.adapters.avro import AvroDecoder, SchemaRegistry, load_schema
from samtykke.adapters.kafka import client_options
from samtykke.adapters.limits import BodyLimit
from samtykke.adapters.metrics import instrument_http, service_registry
from samtykke.adapters.serving import serve_http
from samtykke.adapters.settings import Settings, get_settings
from samtykke.domain.catalog import load_catalog
from samtykke.domain.registers import RegisterBook
from samtykke.domain.suppression import SuppressionRules

from . import api, export, registers, stream
from .auth import RateLimitHeaders
from .errors import install_error_handlers
from .feed import TopicFeed
from .gate import SuppressionGate
from .index import SuppressionIndex
from .metrics import SuppressionMetrics
from .schemas import BODY_LIMITS
from .targets import TargetParser

log = logging.getLogger(__name__)
TICK_SECONDS = 1.0


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    registry = service_registry()
    metrics = SuppressionMetrics(registry)
    index = SuppressionIndex(
        SuppressionRules(load_catalog()),
        RegisterBook(dict(settings.register_freshness_days)),
        settings.identifier_quarantine_days,
    )
    schema_registry = SchemaRegistry.from_settings(settings)
    decoders = {
        settings.topic_changes: AvroDecoder(
            schema_registry, load_schema(settings.schema_dir, "ConsentChanged"), logical_types=False
        ),
        settings.topic_subjects: AvroDecoder(
            schema_registry, load_schema(settings.schema_dir, "SubjectChanged"), logical_types=False
        ),
        settings.topic_watermarks: AvroDecoder(schema_registry, load_schema(settings.schema_dir, "Watermark")),
    }
    feed = TopicFeed(
        client_options(settings),  # checks the Kafka security settings at start-up
        settings.topic_changes,
        settings.topic_subjects,
        decoders,
        index,
        metrics,
        settings.suppression_dlq_topic,
        topic_watermarks=settings.topic_watermarks,
        refresh_seconds=settings.kafka_metadata_refresh_seconds,
    )
    gate = SuppressionGate(
        index,
        feed.age,
        feed.caught_up.is_set,
        settings.suppression_max_lag_seconds,
        settings.suppression_stale_response == "503",
        metrics,
        held=lambda: feed.completeness.held,
    )
    metrics.watch(feed.age, gate.subject_count)
    metrics.watch_completeness(feed.complete_through, lambda: feed.completeness.held)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(_supervised(feed.run, "feed"), name="feed"),
            asyncio.create_task(_ticking(gate), name="tick"),
            asyncio.create_task(_supervised(app.state.register_feed.run, "registers"), name="registers"),
        ]
        try:
            yield
        finally:
            for task in [*tasks, *app.state.background]:
                task.cancel()
            await asyncio.gather(*tasks, *app.state.background, return_exceptions=True)
            await app.state.register_publisher.stop()
            await schema_registry.aclose()

    app = FastAPI(
        title="samtykke suppression service",
        version="1",
        description="The gate in front of every marketing send: decisions with reasons, the suppression list "
        "and its change feed, national register imports. Fails closed when its index is stale.",
        lifespan=lifespan,
    )
    app.state.authenticator = Authenticator.from_settings(settings, settings.suppression_rate_limit_per_minute)
    app.state.audit_skew_seconds = settings.audit_skew_seconds
    app.state.gate, app.state.feed, app.state.metrics = gate, feed, metrics
    app.state.parser = TargetParser(settings.identifier_hash_key.encode())
    app.state.register_jobs, app.state.background = {}, set()
    registers.attach(app, settings, index, schema_registry)
    for module in (api, stream, export, registers):
        app.include_router(module.router)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limits=BODY_LIMITS)  # before parsing and credentials; 413s still measured
    instrument_http(app, registry, "suppression")
    app.add_middleware(RateLimitHeaders)
    _operations_routes(app, feed, gate)
    return app


async def _supervised(run: Callable[[], Awaitable[None]], name: str) -> None:
    """Restart a crashed loop after a pause: a bug is logged loudly, the index ages meanwhile (fail closed)."""
    while True:
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s crashed; restarting in 1s", name)
            await asyncio.sleep(1.0)


async def _ticking(gate: SuppressionGate) -> None:
    while True:
        await asyncio.sleep(TICK_SECONDS)
        gate.tick(time.time())


def _operations_routes(app: FastAPI, feed: TopicFeed, gate: SuppressionGate) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        age, through = feed.age(), feed.complete_through()
        # caught up: replayed to the end offsets seen at start and reached a watermark
        body = {
            "ready": feed.caught_up.is_set() and not gate.is_stale(),
            "caught_up": feed.caught_up.is_set(),
            "stale": gate.is_stale(),
            "index_age_seconds": round(age, 3),
            "complete_through": through.isoformat() if through is not None else None,
            "kafka_age_seconds": round(feed.kafka_age(), 3),
            "subjects": gate.subject_count(),
            "position": gate.position(),
        }
        registers_caught_up = app.state.register_feed.caught_up.is_set()  # every register snapshot applied
        body["registers_caught_up"], body["ready"] = registers_caught_up, bool(body["ready"]) and registers_caught_up
        return JSONResponse(body, status_code=200 if body["ready"] else 503)


def serve(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    serve_http(create_app, settings, ("suppression", "serve"), settings.suppression_port)
