"""TopicFeed: keeps the index in step with `consent.changes` and `consent.subjects`.

Every replica reads every partition of both topics from the beginning (manual assignment, no
consumer group), like a global table. Readiness: caught up to the end offsets seen at start.

Freshness, precisely: after each poll, a partition counts as *confirmed* at the time of the
broker's latest fetch response for it if the index has applied everything below that
response's high-water mark. The index **age** is now minus the oldest such confirmation over
all partitions (or minus the start time for a partition never confirmed). An idle, healthy
feed is confirmed every fetch (≈0.1 s); a stalled consumer, an unreachable broker or a backlog
all make the age grow, and past `suppression_max_lag_seconds` decisions fail closed.

Error policy: a message that cannot be decoded is poison — counted, logged by offset (never
its content), sent to the DLQ as every consumer does (`adapters.dead_letters`), and its subject
(the message key) is tainted so it is never allowed on what we missed. A registry outage is
transient: the message is retried with backoff while the index ages. Kafka errors are retried
by the client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from samtykke.adapters.avro import AvroDecoder, RegistryError, UndecodableMessage
from samtykke.adapters.dead_letters import PoisonKind, dead_letter, undecodable_kind
from samtykke.adapters.kafka import LONG_RETENTION_MS, assign_all, idempotent_producer
from samtykke.domain.events import ConsentChanged, SubjectChanged
from samtykke.domain.model import SubjectId

from .index import SuppressionIndex
from .metrics import SuppressionMetrics

log = logging.getLogger(__name__)
# who dead-letters, in the header every consumer sets: replicas read without a consumer group
CONSUMER = "suppression"


class TopicFeed:
    def __init__(
        self,
        bootstrap: str,
        topic_changes: str,
        topic_subjects: str,
        decoders: dict[str, AvroDecoder],
        index: SuppressionIndex,
        metrics: SuppressionMetrics,
        dlq_topic: str,
    ) -> None:
        self._bootstrap = bootstrap
        self._changes, self._subjects = topic_changes, topic_subjects
        self._decoders = decoders
        self._index = index
        self._metrics = metrics
        self._dlq_topic = dlq_topic
        self._dlq: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._start_ends: dict[TopicPartition, int] = {}
        self._confirmed: dict[TopicPartition, float] = {}
        self._started_at = time.time()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.caught_up = asyncio.Event()

    # -- test and operations hook ---------------------------------------------------------
    def pause(self) -> None:
        """Stop applying messages (the index then ages and fails closed). For tests and drills."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def age(self) -> float:
        now = time.time()
        if not self._partitions:
            return now - self._started_at
        return now - min(self._confirmed.get(tp, self._started_at) for tp in self._partitions)

    # -- the loop -------------------------------------------------------------------------
    async def run(self) -> None:
        consumer = self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        try:
            await self._assign(consumer)
            while True:
                await self._flowing.wait()
                try:
                    batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
                except KafkaError as exc:
                    log.warning("kafka fetch failed (%s); retrying", type(exc).__name__)
                    await asyncio.sleep(0.5)
                    continue
                for tp, messages in batches.items():
                    for message in messages:
                        await self._apply(tp, message)
                await self._confirm(consumer)
        finally:
            await consumer.stop()
            if self._dlq is not None:
                await self._dlq.stop()

    async def _assign(self, consumer: AIOKafkaConsumer) -> None:
        # the topics may not exist yet (their owner creates them): not ready until they do
        topics = (self._changes, self._subjects)
        self._partitions = await assign_all(consumer, self._bootstrap, topics, "beginning", wait_seconds=None)
        self._start_ends = await consumer.end_offsets(self._partitions)
        for tp in self._partitions:  # so the position (the proof on each decision) names every partition
            self._index.track(tp.topic, tp.partition, await consumer.position(tp))
        log.info(
            "feed assigned %d partitions; replaying %d messages", len(self._partitions), sum(self._start_ends.values())
        )

    async def _apply(self, tp: TopicPartition, message: Any) -> None:
        now = time.time()
        try:
            record = await self._decode(tp.topic, message.value)
            if tp.topic == self._changes:
                change = ConsentChanged.from_record(record)
                self._index.apply_consent(change, now)
                if self.caught_up.is_set():  # a start-up replay is not propagation
                    self._metrics.propagation.observe(max(0.0, now - change.recorded_at.timestamp()))
            else:
                self._index.apply_subject(SubjectChanged.from_record(record), now)
            self._metrics.applied.labels(tp.topic).inc()
        except (UndecodableMessage, KeyError, TypeError, ValueError, AttributeError) as exc:
            await self._poison(tp, message, exc)
        self._index.advance(tp.topic, tp.partition, message.offset)

    async def _decode(self, topic: str, value: bytes | None) -> dict[str, Any]:
        backoff = 0.2
        while True:
            try:
                record: dict[str, Any] = await self._decoders[topic].decode(value)
                return record
            except RegistryError as exc:
                if not exc.retriable:
                    raise UndecodableMessage(str(exc)) from exc
                log.warning("schema registry unavailable; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _poison(self, tp: TopicPartition, message: Any, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        log.error("undecodable message at %s/%d@%d: %s", tp.topic, tp.partition, message.offset, reason[:300])
        self._metrics.undecodable.labels(tp.topic).inc()
        self._index.taint(SubjectId(message.key.decode("utf-8", "replace")) if message.key else None)
        # a record that decodes but does not fit the event is undecodable too: no retry will help
        kind = undecodable_kind(exc) if isinstance(exc, UndecodableMessage) else PoisonKind.UNDECODABLE
        letter = dead_letter(message, kind, reason, CONSUMER, datetime.now(UTC))
        try:
            producer = await self._dlq_producer()
            await producer.send_and_wait(self._dlq_topic, letter.value, key=letter.key, headers=letter.headers)
        except KafkaError as exc2:
            # the message is still counted, logged and its subject blocked; the DLQ is for the operator
            log.error("could not dead-letter %s/%d@%d: %s", tp.topic, tp.partition, message.offset, exc2)

    async def _dlq_producer(self) -> AIOKafkaProducer:
        if self._dlq is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
            await admin.start()
            try:
                await admin.create_topics(
                    [NewTopic(self._dlq_topic, 1, 1, topic_configs={"retention.ms": LONG_RETENTION_MS})]
                )
            except TopicAlreadyExistsError:
                pass
            finally:
                await admin.close()
            self._dlq = idempotent_producer(self._bootstrap)
            await self._dlq.start()
        return self._dlq

    async def _confirm(self, consumer: AIOKafkaConsumer) -> None:
        lag = 0
        caught_up = True
        for tp in self._partitions:
            position = await consumer.position(tp)
            highwater, polled = consumer.highwater(tp), consumer.last_poll_timestamp(tp)
            if highwater is not None and polled is not None:
                lag += max(0, highwater - position)
                if position >= highwater:
                    self._confirmed[tp] = polled / 1000
            if position < self._start_ends.get(tp, 0):
                caught_up = False
        self._metrics.index_lag.set(lag)
        if caught_up and not self.caught_up.is_set():
            self._index.start_recording(time.time())
            self.caught_up.set()
            log.info("index caught up: %d subjects", len(self._index))
