"""TopicFeed: keeps the index in step with `consent.changes` and `consent.subjects`, and knows how
far that index is complete end to end.

Every replica reads every partition of both topics from the beginning (manual assignment, no
consumer group), like a global table, and looks for partitions added at run time every
`kafka_metadata_refresh_seconds`: a new partition is read from its beginning.

Freshness is end to end (DESIGN §7). The feed also reads the watermark topic: the consent
service's relay says there, at least every half second, "every change committed before T is on
these partitions below these offsets". Once the index has applied every listed offset it is
complete through T (`domain.freshness.Completeness`), and the index **age** is now − T. A stuck
relay (no new watermark), an unread partition (listed, never reached) or an unknown schema id
(retried, never skipped) all make the age grow, and past `suppression_max_lag_seconds`
decisions fail closed. A missing watermark topic means never complete: stale, not ready.
Kept as a precondition: after each poll a partition counts as *confirmed* at the time of the
broker's latest fetch response if the index has applied everything below its high-water mark;
the age is never less than now minus the oldest confirmation (a stalled consumer ages at once).
Ready: the start-up replay reached the end offsets seen at start, and a watermark was reached.

Error policy: a message that cannot be decoded is poison — counted, logged by offset (never
its content), sent to the DLQ as every consumer does (`adapters.dead_letters`), and its subject
(the message key's subject) is tainted so it is never allowed on what we missed. A tombstone (a
null value on the changes topic) is no poison: the consent its key names leaves the index; an
erased subject stays blocked by its `consent.subjects` record. The registry failing,
or not knowing a schema id, is transient: the message is retried with backoff while the index
ages. An unreadable watermark is logged and skipped: it only leaves the index older. Kafka
errors are retried by the client.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from samtykke.adapters.avro import AvroDecoder, RegistryError, UndecodableMessage
from samtykke.adapters.dead_letters import PoisonKind, dead_letter, undecodable_kind
from samtykke.adapters.kafka import (
    LONG_RETENTION_MS,
    KafkaOptions,
    assign_all,
    create_topics,
    extend_assignment,
    idempotent_producer,
    present_partitions,
)
from samtykke.domain.consent_keys import parse_consent_key, subject_of_key
from samtykke.domain.events import ConsentChanged, SubjectChanged
from samtykke.domain.freshness import Completeness, Watermark
from samtykke.domain.model import SubjectId

from .index import SuppressionIndex
from .metrics import SuppressionMetrics

log = logging.getLogger(__name__)
# who dead-letters, in the header every consumer sets: replicas read without a consumer group
CONSUMER = "suppression"


class TopicFeed:
    def __init__(
        self,
        kafka: KafkaOptions,
        topic_changes: str,
        topic_subjects: str,
        decoders: dict[str, AvroDecoder],
        index: SuppressionIndex,
        metrics: SuppressionMetrics,
        dlq_topic: str,
        *,
        topic_watermarks: str | None = None,
        refresh_seconds: float = 5.0,
    ) -> None:
        self._kafka = kafka
        self._changes, self._subjects = topic_changes, topic_subjects
        self._watermarks = topic_watermarks  # None: never complete, so never fresh
        self._refresh_seconds = refresh_seconds
        self.completeness = Completeness()
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
        """Seconds the index is behind: end to end (now − the watermark reached; since start when
        none was), and never less than since Kafka last confirmed every partition applied."""
        now = time.time()
        reached = self.completeness.reached
        end_to_end = now - (reached.through.timestamp() if reached is not None else self._started_at)
        return max(0.0, end_to_end, self.kafka_age(now))

    def kafka_age(self, now: float | None = None) -> float:
        now = time.time() if now is None else now
        if not self._partitions:
            return now - self._started_at
        return now - min(self._confirmed.get(tp, self._started_at) for tp in self._partitions)

    def complete_through(self) -> datetime | None:
        return self.completeness.through

    # -- the loop -------------------------------------------------------------------------
    async def run(self) -> None:
        consumer = self._consumer = AIOKafkaConsumer(
            **self._kafka,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        try:
            await self._assign(consumer)
            refreshed = time.monotonic()
            while True:
                await self._flowing.wait()
                if time.monotonic() - refreshed >= self._refresh_seconds:
                    await self._discover(consumer)
                    refreshed = time.monotonic()
                try:
                    batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
                except KafkaError as exc:
                    log.warning("kafka fetch failed (%s); retrying", type(exc).__name__)
                    await asyncio.sleep(0.5)
                    continue
                await self._apply_fetch(batches)
                await self._confirm(consumer)
        finally:
            await consumer.stop()
            if self._dlq is not None:
                await self._dlq.stop()

    async def _assign(self, consumer: AIOKafkaConsumer) -> None:
        # the topics may not exist yet (their owner creates them): not ready until they do
        topics = (self._changes, self._subjects)
        self._partitions = await assign_all(consumer, self._kafka, topics, "beginning", wait_seconds=None)
        self._start_ends = await consumer.end_offsets(self._partitions)
        for tp in self._partitions:  # so the position (the proof on each decision) names every partition
            self._index.track(tp.topic, tp.partition, await consumer.position(tp))
        log.info(
            "feed assigned %d partitions; replaying %d messages", len(self._partitions), sum(self._start_ends.values())
        )
        if self._watermarks is not None:
            # the newest watermark is the one that counts: start at the last record kept
            marks = await present_partitions(self._kafka, [self._watermarks])
            if not marks:
                log.warning("no watermark topic %s yet: the index stays stale until it appears", self._watermarks)
                return
            try:
                ends, starts = await consumer.end_offsets(marks), await consumer.beginning_offsets(marks)
            except KafkaError as exc:  # read them all instead: slower, as sure
                log.warning("watermark offsets unavailable (%s); reading from the beginning", type(exc).__name__)
                ends = starts = dict.fromkeys(marks, 0)
            await extend_assignment(consumer, marks, {tp: max(starts[tp], ends[tp] - 1) for tp in marks})

    async def _discover(self, consumer: AIOKafkaConsumer) -> None:
        """Assign partitions added at run time (and a watermark topic created late), from their start."""
        topics = [self._changes, self._subjects, *([self._watermarks] if self._watermarks else [])]
        try:
            present = await present_partitions(self._kafka, topics)
        except (KafkaError, OSError) as exc:
            log.warning("could not refresh topic metadata (%s); retrying later", type(exc).__name__)
            return
        assigned = consumer.assignment()
        added = [tp for tp in present if tp not in assigned]
        if not added:
            return
        await extend_assignment(consumer, added)
        for tp in added:
            if tp.topic != self._watermarks:
                self._partitions.append(tp)
                self._index.track(tp.topic, tp.partition, await consumer.position(tp))
        log.info(
            "feed assigned %d new partitions: %s", len(added), ", ".join(f"{t.topic}[{t.partition}]" for t in added)
        )

    async def _saw(self, tp: TopicPartition, message: Any) -> None:
        if message.value is None:
            return  # a tombstone: compaction's business, not a watermark
        try:
            self.completeness.saw(Watermark.from_record(await self._decode(tp.topic, message.value)))
        except (UndecodableMessage, KeyError, TypeError, ValueError, AttributeError) as exc:
            # never dead-lettered: skipping one only leaves the index older (fail closed)
            log.error(
                "unreadable watermark at %s/%d@%d: %s", tp.topic, tp.partition, message.offset, type(exc).__name__
            )
            self._metrics.undecodable.labels(tp.topic).inc()

    async def _apply_fetch(self, batches: dict[TopicPartition, list[Any]]) -> None:
        """Decode the fetch first (the registry may be asked: awaits), then fold it into the index without
        an await in between (`SuppressionIndex.batch`), then dead-letter its poison."""
        decoded: list[tuple[TopicPartition, Any, dict[str, Any] | Exception | None]] = []
        for tp, messages in batches.items():
            for message in messages:
                if tp.topic == self._watermarks:
                    await self._saw(tp, message)
                elif tp.topic == self._changes and message.value is None:
                    decoded.append((tp, message, None))  # a tombstone
                else:
                    try:
                        decoded.append((tp, message, await self._decode(tp.topic, message.value)))
                    except UndecodableMessage as undecodable:
                        decoded.append((tp, message, undecodable))
        poison: list[tuple[TopicPartition, Any, Exception]] = []
        now = time.time()
        applied: dict[str, int] = {}
        with self._index.batch(now):
            for tp, message, record in decoded:
                try:
                    self._fold(tp, message, record, now)
                    applied[tp.topic] = applied.get(tp.topic, 0) + 1
                except (UndecodableMessage, KeyError, TypeError, ValueError, AttributeError) as exc:
                    self._taint(tp, message, exc)  # before any await: no check sees the subject untainted
                    poison.append((tp, message, exc))
                self._index.advance(tp.topic, tp.partition, message.offset)
        for topic, count in applied.items():
            self._metrics.applied.labels(topic).inc(count)
        for tp, message, reason in poison:
            await self._dead_letter(tp, message, reason)

    def _fold(self, tp: TopicPartition, message: Any, record: dict[str, Any] | Exception | None, now: float) -> None:
        if isinstance(record, Exception):
            raise record
        if record is None:
            # a tombstone: the consent was purged or its subject erased (whose subjects record
            # keeps the block); a key naming no consent is poison like any unreadable record
            self._index.remove_consent(parse_consent_key(message.key.decode("utf-8")), now)
        elif tp.topic == self._changes:
            change = ConsentChanged.from_record(record)
            self._index.apply_consent(change, now)
            if self.caught_up.is_set():  # a start-up replay is not propagation
                self._metrics.propagation.observe(max(0.0, now - change.recorded_at.timestamp()))
        else:
            self._index.apply_subject(SubjectChanged.from_record(record), now)

    async def _decode(self, topic: str, value: bytes | None) -> dict[str, Any]:
        backoff = 0.2
        while True:
            try:
                record: dict[str, Any] = await self._decoders[topic].decode(value)
                return record
            except RegistryError as exc:
                # unreachable, refusing or not knowing the schema id: never poison, a record skipped
                # here could be a withdrawal; the index ages meanwhile and fails closed
                log.warning("schema registry: %s; retrying in %.1fs", str(exc)[:200], backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _taint(self, tp: TopicPartition, message: Any, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        log.error("undecodable message at %s/%d@%d: %s", tp.topic, tp.partition, message.offset, reason[:300])
        self._metrics.undecodable.labels(tp.topic).inc()
        key = message.key.decode("utf-8", "replace") if message.key else None
        self._index.taint(SubjectId(subject_of_key(key)) if key else None)

    async def _dead_letter(self, tp: TopicPartition, message: Any, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"
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
            admin = AIOKafkaAdminClient(**self._kafka)
            await admin.start()
            try:
                await create_topics(
                    admin, [NewTopic(self._dlq_topic, 1, 1, topic_configs={"retention.ms": LONG_RETENTION_MS})]
                )
            finally:
                await admin.close()
            self._dlq = idempotent_producer(self._kafka)
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
        positions = self._index.positions
        reached = self.completeness.advance({(t, p): o for t, parts in positions.items() for p, o in parts.items()})
        if caught_up and reached is not None and not self.caught_up.is_set():
            self._index.start_recording(time.time())
            # the replayed index lives as long as the process: out of the collector's sight, so no
            # later full collection walks millions of subjects while the loop waits
            gc.collect()
            gc.freeze()
            self.caught_up.set()
            log.info("index caught up: %d subjects", len(self._index))
