"""The Faust app of one projection domain: its consumer group reads both contract topics,
applies batches through `BatchApplier`, and serves /metrics, /healthz and /ready.

Every Faust setting below is set on purpose; the comment says why.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, NoReturn, cast

import faust
from faust.streams import Stream
from faust.types import TP, StreamT
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from samtykke.adapters.avro import AvroDecoder, load_schema
from samtykke.adapters.dead_letters import Headers
from samtykke.adapters.kafka import client_options, faust_credentials
from samtykke.adapters.settings import Settings

from .applier import BatchApplier
from .dead_letters import DeadLetterQueue
from .domains import DOMAINS, Domain
from .messages import RawMessage
from .positions import StoredPositionConsumer, StoredPositionTransport
from .resources import ProjectorResources
from .watermarks import WatermarkReader, supervised

log = logging.getLogger(__name__)


def faust_settings(domain: Domain, settings: Settings) -> dict[str, Any]:
    batch = settings.projection_batch_size
    return {
        "broker": ";".join(f"kafka://{server}" for server in settings.kafka_bootstrap.split(",")),
        # exactly-once *effect* comes from version guards + offsets in PostgreSQL; Faust's
        # exactly_once mode (Kafka transactions) is fragile in faust-streaming and not needed
        "processing_guarantee": "at_least_once",
        # used only when a stored position is out of range (the events were deleted by retention):
        # then start from the oldest event still kept rather than skip to the end
        "consumer_auto_offset_reset": "earliest",
        # one poll returns up to one batch, so a full batch is usually one fetch away
        "broker_max_poll_records": batch,
        # per-partition buffer before Faust pauses fetching: the next batches are ready while one
        # commits, and memory stays bounded during a replay of millions of events
        "stream_buffer_maxsize": 4 * batch,
        # the topics are consumed with acks=False, so Faust's commit loop only wakes up to find nothing
        # to do; the projector commits what it applied itself, after PostgreSQL (which holds the truth)
        "broker_commit_every": batch,
        "broker_commit_interval": 10.0,
        # a projector that died (SIGKILL) loses its partitions within ~10 s, not Faust's default 60 s
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 3.0,
        # partitions added at run time: the consumer refreshes the topics' metadata this often, sees the
        # new partition count and rejoins the group, which assigns them (from PostgreSQL: the start)
        "consumer_metadata_max_age_ms": int(settings.kafka_metadata_refresh_seconds * 1000),
        # no tables to restore, so start applying as soon as partitions are assigned
        "stream_recovery_delay": 0.0,
        # no leader election (no tables, no timers) and no topic creation: the contract topics are
        # created with their retention by `ensure_topics`, never with Faust's defaults
        "topic_disable_leader": True,
        "topic_allow_declare": False,
        # the dead-letter send must be on all in-sync replicas before the batch's offsets commit
        "producer_acks": -1,
        # an unexpected error stops the worker (exit 1) so its supervisor restarts it and it resumes
        # from PostgreSQL; restarting only the agent coroutine would skip the batch in flight
        "agent_supervisor": "mode.supervisors.CrashingSupervisor",
        "web_enabled": True,
        # /metrics, /healthz and /ready must answer probes and scrapes from outside the container
        "web_bind": settings.http_host,
        "web_host": settings.http_host,
        "web_port": domain.web_port(settings),
        "datadir": str(settings.state_dir / "faust" / domain.name),
    }


def raw_message(message: Any) -> RawMessage:
    headers = message.headers or ()
    pairs = headers.items() if isinstance(headers, dict) else headers
    return RawMessage(
        message.topic,
        message.partition,
        message.offset,
        message.key,
        message.value,
        tuple((str(k), bytes(v or b"")) for k, v in pairs),
    )


def create_app(domain: Domain, settings: Settings, resources: ProjectorResources) -> faust.App:
    # the same security as every aiokafka client of ours (`client_options`): this process's principal
    credentials = faust_credentials(settings)
    app = faust.App(domain.group(settings), broker_credentials=credentials, **faust_settings(domain, settings))
    app.transport = StoredPositionTransport(app.conf.broker_consumer, app, resources.stored_positions)

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

    topics = app.topic(
        settings.topic_changes, settings.topic_subjects, key_serializer="raw", value_serializer="raw", acks=False
    )

    @app.agent(topics, name=f"{domain.name}_projector")
    async def project(stream: StreamT[bytes]) -> None:
        # take_events is on the concrete Stream, not on the StreamT interface
        batches = cast(Stream[bytes], stream).take_events(
            settings.projection_batch_size, settings.projection_batch_seconds
        )
        async for events in batches:
            messages = [raw_message(event.message) for event in events]
            batch = await applier.apply(messages)
            await recorded()
            await _advise(app, {TP(t, p): offset + 1 for (t, p), offset in batch.positions.items()})
            for (topic, partition), offset in batch.positions.items():
                end = app.consumer.highwater(TP(topic, partition))
                if end is not None:
                    metrics.lag.labels(domain.name, topic, str(partition)).set(max(0, end - offset - 1))

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
        assigned = sorted(f"{tp.topic}[{tp.partition}]" for tp in app.consumer.assignment())
        database = await resources.database_answers()
        ok = database and bool(assigned) and not app.rebalancing
        through = await _complete_through(resources)
        body = {"ready": ok, "database": database, "partitions": assigned, "complete_through": through}
        return view.json(body, status=200 if ok else 503)

    return app


async def _advise(app: faust.App, offsets: dict[TP, int]) -> None:
    consumer = app.consumer
    if not isinstance(consumer, StoredPositionConsumer):
        return
    try:
        await consumer.advise(offsets)
    except Exception as exc:  # advice only: the positions are safe in PostgreSQL
        log.warning("could not commit positions to the consumer group: %s", type(exc).__name__)


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
