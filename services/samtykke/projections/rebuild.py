"""Rebuilds one domain's tables from the start of the topics, then switches readers atomically.

1. A fresh schema `<domain>_rebuild_<n>` (owned by the domain's role) is filled from offset 0
   of both topics through the same `BatchApplier` as the live projector, up to the end offsets
   seen at the start (progress bar on a terminal, log lines otherwise).
2. The switch takes the domain's advisory lock exclusively: the live projector's next batch
   waits (each batch takes the lock shared, first thing), none is half-way. Under the lock the
   rebuild catches up to the live projector's stored offsets, then renames the live schema away
   and the rebuilt one into its place, in one transaction: readers see old or new, never a mix.
3. The live projector's waiting batch then writes into the new schema, whose offsets are at
   least its own; version guards make any overlap harmless. The old schema is dropped.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition

from samtykke.adapters.dead_letters import Headers
from samtykke.adapters.kafka import client_options, idempotent_producer
from samtykke.adapters.progress import Progress
from samtykke.adapters.settings import Settings

from .applier import BatchApplier
from .dead_letters import DeadLetterQueue, SendAndWait
from .domains import Domain
from .offsets import OffsetStore
from .provision import create_schema
from .replay import TopicReplay
from .resources import ProjectorResources

log = logging.getLogger(__name__)


class RebuildRefused(RuntimeError):
    """Another rebuild of the same domain holds the rebuild lock."""


@dataclass(frozen=True, slots=True)
class RebuildReport:
    domain: str
    events: int
    seconds: float
    dead_letters: int


def _rebuild_lock(domain: Domain) -> int:
    return domain.lock_key ^ 0x5EB1_1D


async def _fresh_schema(owner: asyncpg.Connection, domain: Domain) -> tuple[str, int]:
    names = [r["nspname"] for r in await owner.fetch("SELECT nspname FROM pg_namespace")]
    pattern = re.compile(rf"^{domain.name}_(rebuild|retired)_(\d+)$")
    found = [(m.group(1), int(m.group(2)), name) for name in names if (m := pattern.match(name))]
    for kind, _, name in found:
        if kind == "rebuild":  # left by an interrupted rebuild; never read by anyone
            await owner.execute(f"DROP SCHEMA {name} CASCADE")
    n = max((number for _, number, _ in found), default=0) + 1
    target = f"{domain.name}_rebuild_{n}"
    await create_schema(owner, domain, target)
    return target, n


async def _switch(
    owner: asyncpg.Connection,
    domain: Domain,
    target: str,
    n: int,
    replay: TopicReplay,
    applier: BatchApplier,
) -> str | None:
    retired = None
    async with owner.transaction():
        await owner.execute("SELECT pg_advisory_xact_lock($1)", domain.lock_key)
        live = await owner.fetchval("SELECT true FROM pg_namespace WHERE nspname = $1", domain.name)
        if live:
            stored = await OffsetStore(domain.name).load(owner)
            until = {TopicPartition(t, p): offset + 1 for (t, p), offset in stored.items()}
            await replay.drain(until, applier.apply, None)
            retired = f"{domain.name}_retired_{n}"
            await owner.execute(f"ALTER SCHEMA {domain.name} RENAME TO {retired}")
        await owner.execute(f"ALTER SCHEMA {target} RENAME TO {domain.name}")
    return retired


async def rebuild(domain: Domain, settings: Settings, keep_old: bool = False) -> RebuildReport:
    owner = await asyncpg.connect(settings.database_url)
    try:
        if not await owner.fetchval("SELECT pg_try_advisory_lock($1)", _rebuild_lock(domain)):
            raise RebuildRefused(f"another rebuild of {domain.name} is running")
        target, n = await _fresh_schema(owner, domain)
        resources = await ProjectorResources.open(domain, settings, schema=target)
        kafka = client_options(settings)
        producer = idempotent_producer(kafka)
        await producer.start()
        replay = TopicReplay(
            kafka,
            [settings.topic_changes, settings.topic_subjects],
            settings.projection_rebuild_batch_size,
        )
        try:
            await replay.start()
            dead_letters = DeadLetterQueue(domain.group(settings), _sender(producer))
            # its own lock key: the switch holds the live one while the catch-up batches commit
            applier = BatchApplier(
                resources.pool,
                resources.projection,
                resources.decoder,
                dead_letters,
                resources.metrics,
                lock_key=_rebuild_lock(domain) ^ 1,
            )
            started = time.monotonic()
            ends = await replay.end_offsets()
            with Progress(await replay.remaining(ends), f"rebuild {domain.name}") as progress:
                await replay.drain(ends, applier.apply, progress)
            retired = await _switch(owner, domain, target, n, replay, applier)
            if retired is not None and not keep_old:
                await owner.execute(f"DROP SCHEMA {retired} CASCADE")
            seconds = time.monotonic() - started
        finally:
            await replay.stop()
            await producer.stop()
            await resources.close()
        dead = applier.dead_lettered
        log.info(
            "rebuild %s: %d events in %.1fs (%.0f/s), %d dead letters; readers now see the rebuilt tables%s",
            domain.name,
            progress.done,
            seconds,
            progress.done / max(seconds, 1e-9),
            dead,
            f" (old schema kept as {retired})" if retired and keep_old else "",
        )
        return RebuildReport(domain.name, progress.done, seconds, dead)
    finally:
        await owner.close()


def _sender(producer: AIOKafkaProducer) -> SendAndWait:
    async def send_and_wait(topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> None:
        await producer.send_and_wait(topic, value=value, key=key, headers=headers)

    return send_and_wait
