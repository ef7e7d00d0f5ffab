"""A stand-in for the consent service's watermark publisher, for tests of the readers.

It publishes what the relay does (`Watermark` on a compacted topic, Avro through the registry):
"everything before `through` is below these end offsets", reading the end offsets of the
contract topics a moment after taking `through`. A test can stop it (a stuck relay), add
partitions it lists (one the reader does not read yet) and name held subjects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from samtykke.adapters.avro import AvroEncoder, SchemaRegistry, load_schema
from samtykke.adapters.kafka import client_options, idempotent_producer, present_partitions
from samtykke.adapters.settings import Settings
from samtykke.domain.freshness import Watermark

log = logging.getLogger(__name__)
KEY = b"consent"
PARTITIONS_EVERY = 1.0


def standin_topic(settings: Settings) -> str:
    """The stand-in's own topic beside the test's contract topics, apart from the relay's: a test
    that stops it or lists partitions in it controls every watermark its reader sees."""
    return settings.topic_changes.removesuffix("changes") + "watermarks.standin"


class WatermarkPublisher:
    def __init__(self, settings: Settings, every: float = 0.2) -> None:
        self.settings = settings
        self.topic = standin_topic(settings)
        self.every = every
        self.publishing = asyncio.Event()
        self.publishing.set()
        self.held: set[str] = set()
        self.published = 0
        self._partitions: list[TopicPartition] = []
        self._partitions_at = 0.0
        self._registry = SchemaRegistry(settings.registry_url)
        self._encoder = AvroEncoder(self._registry, self.topic, load_schema(settings.schema_dir, "Watermark"))
        self._producer = idempotent_producer(client_options(settings), linger_ms=0)
        self._consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> WatermarkPublisher:
        admin = AIOKafkaAdminClient(**client_options(self.settings))
        await admin.start()
        try:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(self.topic, 1, 1, topic_configs={"cleanup.policy": "compact"})])
        finally:
            await admin.close()
        await self._encoder.register()
        await self._producer.start()
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._producer.stop()
        await self._consumer.stop()
        await self._registry.aclose()

    async def publish(self, extra: dict[tuple[str, int], int] | None = None) -> Watermark:
        """One watermark now: every partition of the contract topics at its end offset."""
        through = datetime.now(UTC)
        if time.monotonic() - self._partitions_at > PARTITIONS_EVERY:
            topics: Sequence[str] = (self.settings.topic_changes, self.settings.topic_subjects)
            self._partitions = await present_partitions(client_options(self.settings), topics)
            self._partitions_at = time.monotonic()
        try:
            ends = await asyncio.wait_for(self._consumer.end_offsets(self._partitions), 2.0) if self._partitions else {}
        except TimeoutError:  # a client stuck on old metadata (a partition just added): start afresh
            await self._consumer.stop()
            self._consumer = AIOKafkaConsumer(**client_options(self.settings), enable_auto_commit=False)
            await self._consumer.start()
            raise

        offsets = {(tp.topic, tp.partition): end for tp, end in ends.items()} | (extra or {})
        watermark = Watermark(through, offsets, frozenset(self.held))
        value = self._encoder.encode(watermark.as_record(datetime.now(UTC)))
        await self._producer.send_and_wait(self.topic, value, key=KEY)
        self.published += 1
        return watermark

    def refresh_partitions(self) -> None:
        """List partitions added since at the next watermark."""
        self._partitions_at = 0.0

    async def _run(self) -> None:
        while True:
            await self.publishing.wait()
            try:
                await self.publish()
            except Exception as error:  # a broker or registry moment: retried, as the relay does
                log.warning("stand-in watermark not published, retrying: %s: %s", type(error).__name__, error)
                self._partitions_at = 0.0
            await asyncio.sleep(self.every)
