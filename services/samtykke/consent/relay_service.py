"""The outbox relay as a process of its own (`samtykke consent relay`), or inside the API's.

Built here for both: `running_relay` runs an `OutboxRelay` wired from the settings, on a database pool
of its own either way, and `create_relay_app` is the relay's own process, answering `/healthz`,
`/ready` and `/metrics` on `relay_port`.

Why a process of its own: inside the consent service the relay shares one event loop with the API,
so every request delays the next publication round; under load it was the first stage to fall
behind. A thread does not help (the GIL: the API and the relay slowed each other down more). With
`consent_relay = false` the API leaves publishing, and the outbox gauges, to these processes. Any
number may run, beside each other and beside API replicas that still relay: only the leadership
lease's holder publishes (`leadership.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from samtykke.adapters.avro import AvroEncoder, SchemaRegistry, load_schema
from samtykke.adapters.kafka import client_options, ensure_topics, idempotent_producer
from samtykke.adapters.metrics import instrument_http, service_registry
from samtykke.adapters.postgres import create_pool, rollback_only
from samtykke.adapters.serving import serve_http
from samtykke.adapters.settings import Settings, get_settings

from .metrics import ConsentMetrics
from .ports import OUTBOX_CONSENT, OUTBOX_SUBJECT
from .relay import OutboxRelay, outbox_status, watch_outbox
from .store import PostgresConsentStore, create_schema
from .watermarks import WATERMARK_SCHEMA, TopicEnds, WatermarkPublisher

# how often the outbox backlog gauges are refreshed (a fraction of the alerts' `for:` windows)
OUTBOX_SAMPLE_SECONDS = 2.0


def build_relay(
    settings: Settings, pool: asyncpg.Pool, schema_registry: SchemaRegistry, metrics: ConsentMetrics
) -> OutboxRelay:
    """The relay the settings describe: its topics (provisioned before the first round), encoders and
    watermark publisher. Checks the Kafka security settings now, at start-up."""
    kafka = client_options(settings)
    encoders = {
        name: AvroEncoder(schema_registry, topic, load_schema(settings.schema_dir, name))
        for name, topic in ((OUTBOX_CONSENT, settings.topic_changes), (OUTBOX_SUBJECT, settings.topic_subjects))
    }

    async def provision() -> None:
        await ensure_topics(
            kafka,
            settings.topic_changes,
            settings.topic_subjects,
            settings.topic_partitions,
            compaction_lag_ms=settings.documentation_retention_ms,
            watermarks=settings.topic_watermarks,
        )

    watermarks = WatermarkPublisher(
        settings.topic_watermarks,
        AvroEncoder(schema_registry, settings.topic_watermarks, load_schema(settings.schema_dir, WATERMARK_SCHEMA)),
        TopicEnds(kafka, [settings.topic_changes, settings.topic_subjects]),
    )
    return OutboxRelay(
        pool,
        PostgresConsentStore(pool),
        lambda: idempotent_producer(kafka),
        encoders,
        metrics,
        settings.relay_batch_size,
        settings.relay_idle_poll_seconds,
        provision,
        watermarks=watermarks,
        backlog_batch_size=settings.relay_backlog_batch_size,
    )


@dataclass(frozen=True)
class RunningRelay:
    relay: OutboxRelay
    pool: asyncpg.Pool
    tasks: list[asyncio.Task[None]]


@contextlib.asynccontextmanager
async def running_relay(
    settings: Settings, schema_registry: SchemaRegistry, metrics: ConsentMetrics
) -> AsyncIterator[RunningRelay]:
    """The relay's rounds and the outbox gauges, running until the block ends, on a pool of their own
    wherever they run: inside the API, a round queued for a connection behind every waiting request
    (the lease holds one, a round's snapshot and settling one at a time, the gauges one)."""
    # the relay undoes its LISTEN and advisory lock itself (or closes the connection)
    pool = await create_pool(settings.database_url, min_size=2, max_size=4, reset=rollback_only)
    try:
        await create_schema(pool)  # idempotent: a relay may start before any API replica
        relay = build_relay(settings, pool, schema_registry, metrics)
        tasks = [
            asyncio.create_task(relay.run(), name="relay"),
            asyncio.create_task(watch_outbox(pool, metrics, OUTBOX_SAMPLE_SECONDS), name="outbox gauges"),
        ]
        try:
            yield RunningRelay(relay, pool, tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await relay.stop()
    finally:
        await pool.close()


def create_relay_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    registry = service_registry()
    metrics = ConsentMetrics(registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        schema_registry = SchemaRegistry.from_settings(settings)
        try:
            async with running_relay(settings, schema_registry, metrics) as running:
                app.state.running = running
                yield
        finally:
            await schema_registry.aclose()

    app = FastAPI(
        title="samtykke outbox relay",
        version="1",
        description="Publishes the consent service's committed outbox rows, and watermarks, to Kafka.",
        lifespan=lifespan,
        openapi_url=None,
    )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        stopped = [task.get_name() for task in app.state.running.tasks if task.done()]
        if stopped:  # a relay whose rounds ended can never publish again: let it be restarted
            return JSONResponse({"status": "stopped", "tasks": stopped}, 503)
        return JSONResponse({"status": "ok"})

    @app.get("/ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        try:
            status = await outbox_status(app.state.running.pool)
        except Exception as exc:  # report, never raise: readiness is a question
            return JSONResponse({"ready": False, "reason": f"database: {type(exc).__name__}"}, 503)
        return JSONResponse({"ready": True, "leader_epoch": app.state.running.relay.epoch, "outbox": status})

    instrument_http(app, registry, "relay")
    return app


def serve(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    serve_http(create_relay_app, settings, ("consent", "relay"), settings.relay_port)
