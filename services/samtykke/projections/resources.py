"""What a running projector holds open: its database pool (own login), registry client, decoder,
projection and metrics. Opened before the Faust worker starts, on the worker's event loop."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg
from aiokafka import TopicPartition

from samtykke.adapters.avro import SchemaRegistry
from samtykke.adapters.dead_letters import dead_letter_topic
from samtykke.adapters.kafka import client_options, ensure_topics
from samtykke.adapters.postgres import create_pool
from samtykke.adapters.settings import Settings
from samtykke.domain.catalog import load_catalog

from .completeness import CompletenessRecorder
from .decoding import EventDecoder
from .domains import Domain
from .metrics import ProjectionMetrics
from .offsets import OffsetStore
from .projection import Projection
from .retry import with_backoff


@dataclass
class ProjectorResources:
    domain: Domain
    settings: Settings
    pool: asyncpg.Pool
    registry: SchemaRegistry
    projection: Projection
    decoder: EventDecoder
    metrics: ProjectionMetrics
    completeness: CompletenessRecorder

    @classmethod
    async def open(cls, domain: Domain, settings: Settings, schema: str | None = None) -> ProjectorResources:
        metrics = ProjectionMetrics(domain.name)
        await with_backoff(
            lambda: ensure_topics(
                client_options(settings),
                settings.topic_changes,
                settings.topic_subjects,
                settings.topic_partitions,
                compaction_lag_ms=settings.documentation_retention_ms,
                extra=[dead_letter_topic(domain.group(settings))],
            ),
            "topics",
            metrics,
        )
        pool = await with_backoff(lambda: create_pool(domain.dsn(settings), min_size=1, max_size=4), "connect", metrics)
        catalog = load_catalog()
        projection = domain.projection(schema or domain.name, settings, catalog)
        async with pool.acquire() as conn:
            await projection.prepare(conn)
        registry = SchemaRegistry.from_settings(settings)
        decoder = EventDecoder(registry, settings, catalog)
        completeness = CompletenessRecorder(projection.schema)
        return cls(domain, settings, pool, registry, projection, decoder, metrics, completeness)

    async def stored_positions(self, assigned: set[TopicPartition]) -> Mapping[TopicPartition, int | None]:
        stored = await with_backoff(
            lambda: OffsetStore(self.projection.schema).load(self.pool), "positions", self.metrics
        )
        positions = OffsetStore.next_positions(stored, [(tp.topic, tp.partition) for tp in assigned])
        return {tp: positions[(tp.topic, tp.partition)] for tp in assigned}

    async def database_answers(self) -> bool:
        try:
            return await self.pool.fetchval("SELECT true") is True
        except Exception:  # readiness is a question, not an error path
            return False

    async def close(self) -> None:
        await self.registry.aclose()
        await self.pool.close()
