"""The Faust app of one projection domain: its task reads both contract topics in the domain's consumer
group (`ProjectorConsumer`), applies batches through `BatchApplier`, and the app serves /metrics,
/healthz and /ready.

Every Faust setting below is set on purpose; the comment says why.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, NoReturn

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from samtykke.adapters.avro import AvroDecoder, load_schema
from samtykke.adapters.dead_letters import Headers
from samtykke.adapters.kafka import client_options, faust_credentials
from samtykke.adapters.settings import Settings

from .applier import BatchApplier
from .consumer import ProjectorConsumer
from .dead_letters import DeadLetterQueue
from .domains import DOMAINS, Domain
from .resources import ProjectorResources
from .watermarks import WatermarkReader, supervised

log = logging.getLogger(__name__)


def faust_settings(domain: Domain, settings: Settings) -> dict[str, Any]:
    return {
        "broker": ";".join(f"kafka://{server}" for server in settings.kafka_bootstrap.split(",")),
        # no leader election (no tables, no timers) and no topic creation: the contract topics are
        # created with their retention by `ensure_topics`, never with Faust's defaults
        "topic_disable_leader": True,
        "topic_allow_declare": False,
        # the dead-letter send must be on all in-sync replicas before the batch's offsets commit
        "producer_acks": -1,
        "web_enabled": True,
        # /metrics, /healthz and /ready must answer probes and scrapes from outside the container
        "web_bind": settings.http_host,
        "web_host": settings.http_host,
        "web_port": domain.web_port(settings),
        "datadir": str(settings.state_dir / "faust" / domain.name),
    }


def create_app(domain: Domain, settings: Settings, resources: ProjectorResources) -> faust.App:
    # the same security as every aiokafka client of ours (`client_options`): this process's principal
    credentials = faust_credentials(settings)
    app = faust.App(domain.group(settings), broker_credentials=credentials, **faust_settings(domain, settings))
    # Faust's own consumer stays off: the projector's task consumes (`ProjectorConsumer`); the app
    # starts its web server, producer (dead letters) and tasks
    app.producer_only = True

    async def send_and_wait(topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> None:
        await app.producer.send_and_wait(topic, key, value, None, None, headers)

    dead_letters = DeadLetterQueue(domain.group(settings), send_and_wait)
    metrics, completeness = resources.metrics, resources.completeness
    applier = BatchApplier(
        resources.pool,
        resources.projection,
        resources.decoder,
        dead_letters,
        metrics,
        domain.lock_key,
        completeness,
    )

    async def recorded() -> None:
        if completeness.through is not None:
            metrics.complete_through.labels(domain.name).set(completeness.through.timestamp())

    watermarks = WatermarkReader(
        client_options(settings),
        settings.topic_watermarks,
        AvroDecoder(resources.registry, load_schema(settings.schema_dir, "Watermark")),
        completeness,
        resources.pool,
        recorded,
    )

    async def read_watermarks() -> None:
        await supervised(watermarks)

    app.task(read_watermarks)

    consumer = ProjectorConsumer(
        client_options(settings),
        domain.group(settings),
        [settings.topic_changes, settings.topic_subjects],
        resources.stored_positions,
        settings.projection_batch_size,
        settings.projection_batch_seconds,
        int(settings.kafka_metadata_refresh_seconds * 1000),
    )

    async def project() -> None:
        """Apply batch after batch. An unexpected error stops the worker (exit 1), so its supervisor
        restarts it and it resumes from PostgreSQL; carrying on would skip the batch in flight."""
        try:
            await consumer.start()
            async for messages in consumer.batches():
                batch = await applier.apply(messages)
                await recorded()
                await consumer.advise(batch.positions)
                for (topic, partition), offset in batch.positions.items():
                    end = consumer.highwater(topic, partition)
                    if end is not None:
                        metrics.lag.labels(domain.name, topic, str(partition)).set(max(0, end - offset - 1))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            log.critical("%s projector stops: %s", domain.name, type(exc).__name__)
            await app.crash(exc)
        finally:
            await consumer.stop()

    app.task(project)

    @app.page("/metrics")
    async def metrics_page(view: View, request: Request) -> Response:
        # aiohttp wants the charset apart from the media type
        media_type = CONTENT_TYPE_LATEST.split(";")[0]
        return view.bytes(generate_latest(metrics.registry), content_type=media_type)

    @app.page("/healthz")
    async def healthz(view: View, request: Request) -> Response:
        return view.json({"status": "ok"})

    @app.page("/ready")
    async def ready(view: View, request: Request) -> Response:
        assigned = sorted(f"{tp.topic}[{tp.partition}]" for tp in consumer.assignment())
        database = await resources.database_answers()
        ok = database and bool(assigned) and not consumer.rebalancing
        through = await _complete_through(resources)
        body = {"ready": ok, "database": database, "partitions": assigned, "complete_through": through}
        return view.json(body, status=200 if ok else 503)

    return app


async def _complete_through(resources: ProjectorResources) -> str | None:
    """The newest commit instant the domain's tables are complete through, as stored (any instance)."""
    try:
        through = await resources.completeness.read(resources.pool)
    except Exception:  # readiness is a question, not an error path
        return None
    return through.isoformat() if through is not None else None


def run(domain_name: str, settings: Settings) -> NoReturn:
    """Run one projector until SIGTERM/SIGINT (exit 0) or an unexpected error (exit 1)."""
    from faust.worker import Worker

    domain = DOMAINS[domain_name]
    (settings.state_dir / "faust" / domain.name).mkdir(parents=True, exist_ok=True)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    resources = loop.run_until_complete(ProjectorResources.open(domain, settings))
    app = create_app(domain, settings, resources)
    log.info(
        "%s projector: group %s, schema %s, web on %s:%d",
        domain.name,
        domain.group(settings),
        resources.projection.schema,
        settings.http_host,
        domain.web_port(settings),
    )
    worker = Worker(app, loop=loop, loglevel="INFO", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
