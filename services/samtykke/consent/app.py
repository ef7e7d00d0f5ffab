"""Composition root of the consent service: wires settings, pools, codecs, relay and sweeper."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path
from fastapi.responses import JSONResponse

from samtykke.adapters.auth import Authenticator, RateLimitHeaders, install_scope_handler, require
from samtykke.adapters.avro import SchemaRegistry
from samtykke.adapters.limits import BodyLimit
from samtykke.adapters.metrics import instrument_http, service_registry
from samtykke.adapters.postgres import create_pool, rollback_only
from samtykke.adapters.problems import problem
from samtykke.adapters.serving import serve_http
from samtykke.adapters.settings import Settings, get_settings
from samtykke.adapters.vault import IdentifierVault
from samtykke.domain.catalog import load_catalog
from samtykke.domain.consent_keys import subject_of_key
from samtykke.selfservice import routes as selfservice

from . import api, imports_api, sms, unsubscribe
from .imports_jobs import ConsentImporter
from .metrics import ConsentMetrics
from .relay import outbox_status
from .relay_service import running_relay
from .schemas import BODY_LIMITS, ERROR_RESPONSES
from .service import ConsentService
from .store import PostgresConsentStore, create_schema
from .sweeper import LifecycleSweeper

log = logging.getLogger(__name__)
# a bigserial: anything outside it names no row, and is refused as such before the database sees it
DeadLetterId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The outbox dead letter's id")]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    registry = service_registry()
    metrics = ConsentMetrics(registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.database_url, min_size=2, max_size=20, reset=rollback_only)
        await create_schema(pool)
        schema_registry = SchemaRegistry.from_settings(settings)
        catalog = load_catalog()
        store = PostgresConsentStore(pool)
        vault = IdentifierVault(settings.identifier_encryption_key, settings.identifier_encryption_retired_keys)
        svc = ConsentService(
            store,
            catalog,
            vault,
            settings.identifier_hash_key.encode(),
            settings.topic_changes,
            settings.topic_subjects,
            metrics,
        )

        sweeper = LifecycleSweeper(store, catalog, metrics, settings.topic_changes, settings.sweeper_interval_seconds)
        app.state.service, app.state.sweeper, app.state.pool, app.state.store = svc, sweeper, pool, store
        app.state.importer = ConsentImporter(
            catalog, vault, settings.identifier_hash_key.encode(), settings.topic_changes, settings.topic_subjects
        )
        sweeping = asyncio.create_task(sweeper.run(), name="sweeper")
        try:
            async with contextlib.AsyncExitStack() as relaying:
                # the relay here unless it runs as a process of its own (`samtykke consent relay`)
                if settings.consent_relay:
                    await relaying.enter_async_context(running_relay(settings, schema_registry, metrics))
                try:
                    yield
                finally:
                    await imports_api.stop_jobs(app)
        finally:
            sweeping.cancel()
            await asyncio.gather(sweeping, return_exceptions=True)
            await schema_registry.aclose()
            await pool.close()

    app = FastAPI(
        title="samtykke consent service",
        version="1",
        description="System of record for subjects' consents; emits ConsentChanged and SubjectChanged to Kafka.",
        lifespan=lifespan,
    )
    app.state.authenticator = Authenticator.from_settings(settings, settings.consent_rate_limit_per_minute)
    app.state.backdate_window_days = settings.backdate_window_days
    app.include_router(api.router)
    app.include_router(imports_api.router)
    app.state.import_tasks = set()
    # the subjects' own doors: one-click unsubscribe links and SMS keywords
    unsubscribe.install(app, settings)
    sms.install(app, settings)
    selfservice.install(app, settings)  # the subjects' own pages, opened by a link from the portal
    api.install_error_handlers(app)
    install_scope_handler(app)
    app.add_middleware(BodyLimit, limits=BODY_LIMITS)  # before parsing and credentials; 413s still measured
    instrument_http(app, registry, "consent")
    app.add_middleware(RateLimitHeaders)
    _operations_routes(app)
    _dead_letter_routes(app)
    return app


def _operations_routes(app: FastAPI) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        try:
            await app.state.pool.fetchval("SELECT 1")
        except Exception as exc:  # report, never raise: readiness is a question
            return JSONResponse({"ready": False, "reason": f"database: {type(exc).__name__}"}, 503)
        return JSONResponse({"ready": True, "outbox": await outbox_status(app.state.pool)})

    @app.get(
        "/v1/outbox",
        summary="Outbox backlog: rows not yet on Kafka",
        tags=["operations"],
        dependencies=[Depends(require("consent:admin"))],
        responses=ERROR_RESPONSES,
    )
    async def outbox() -> dict[str, Any]:
        return await outbox_status(app.state.pool)

    @app.post(
        "/v1/lifecycle/sweep",
        summary="Run the lifecycle sweeper now",
        tags=["operations"],
        dependencies=[Depends(require("consent:admin"))],
        responses=ERROR_RESPONSES,
    )
    async def sweep() -> dict[str, int]:
        report = await app.state.sweeper.sweep(await app.state.store.now())
        return {
            "expired": report.expired,
            "purged_ledger_rows": report.purged_ledger_rows,
            "purged_outbox_rows": report.purged_outbox_rows,
        }


def _dead_letter_routes(app: FastAPI) -> None:
    """An operator's way out for outbox rows the relay set aside: re-queue them (after a build that can
    encode them is deployed) or discard them (the change stays in the ledger). Either releases the
    subject from the watermark's held list, so the gate stops answering `stale` for it."""

    @app.get(
        "/v1/outbox/dead-letters",
        summary="Outbox rows the relay could not encode, with the reason",
        tags=["operations"],
        dependencies=[Depends(require("consent:admin"))],
        responses=ERROR_RESPONSES,
    )
    async def dead_letters() -> list[dict[str, Any]]:
        return [
            {
                "id": d.message.id,
                "topic": d.message.topic,
                "subject_id": subject_of_key(d.message.key),
                "key": d.message.key,
                "schema_name": d.message.schema_name,
                "created_at": d.message.created_at.isoformat(),
                "reason": d.reason,
                "dead_lettered_at": d.dead_lettered_at.isoformat(),
            }
            for d in await app.state.store.dead_letters()
        ]

    @app.post(
        "/v1/outbox/dead-letters/{message_id}/requeue",
        summary="Enqueue a dead-lettered row again, at the end of the outbox",
        tags=["operations"],
        dependencies=[Depends(require("consent:admin"))],
        responses=ERROR_RESPONSES,
    )
    async def requeue(message_id: DeadLetterId) -> JSONResponse:
        message = await app.state.store.requeue_dead_letter(message_id)
        if message is None:
            return problem(404, "not_found", [("message_id", "no dead letter with this id")])
        log.info("outbox dead letter %d re-queued as %d", message_id, message.id)
        return JSONResponse({"requeued": message_id, "outbox_id": message.id})

    @app.delete(
        "/v1/outbox/dead-letters/{message_id}",
        summary="Discard a dead-lettered row (its change stays in the ledger)",
        tags=["operations"],
        dependencies=[Depends(require("consent:admin"))],
        responses=ERROR_RESPONSES,
    )
    async def discard(message_id: DeadLetterId) -> JSONResponse:
        if not await app.state.store.discard_dead_letter(message_id):
            return problem(404, "not_found", [("message_id", "no dead letter with this id")])
        log.warning("outbox dead letter %d discarded by an operator", message_id)
        return JSONResponse({"discarded": message_id})


def serve(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    serve_http(create_app, settings, ("consent", "serve"), settings.consent_port)
