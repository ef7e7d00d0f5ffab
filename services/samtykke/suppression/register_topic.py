"""The register topic's records (Avro `RegisterSnapshot`) and the publisher of an accepted import.

One partition, compacted. A snapshot is written as chunks keyed `<register>:<snapshot id>:<n>`,
then a head keyed `<register>` naming it (publication date, count, chunks); compaction keeps the
latest head per register, and the publisher tombstones the chunks of the snapshot it replaced.
So a replica that reads the topic from the beginning at any time finds, for every register, the
current head after all of its chunks. Keyed phone hashes only: no number is ever on the topic.
Published once, by the replica that took the import; every replica (that one included) applies
it from the topic. Every record, tombstones too, carries the CloudEvents headers
(`adapters.cloudevents`); the records of one publication share one trace.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Set
from datetime import UTC, date, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from samtykke.adapters import cloudevents
from samtykke.adapters.avro import AvroEncoder
from samtykke.adapters.kafka import KafkaOptions, idempotent_producer
from samtykke.domain.registers import CHUNK_SIZE, Register, SnapshotHead, chunk_key, chunked, head_key

log = logging.getLogger(__name__)
SCHEMA = "RegisterSnapshot"
TOPIC_CONFIGS = {"cleanup.policy": "compact"}


def head_record(head: SnapshotHead, recorded_at: datetime) -> dict[str, Any]:
    return {
        "register": head.register.value,
        "snapshot_id": head.snapshot_id,
        "published": head.published,
        "listed": head.listed,
        "chunks": head.chunks,
        "chunk": None,
        "phone_hashes": [],
        "forced": head.forced,
        "recorded_at": recorded_at,
    }


def chunk_record(head: SnapshotHead, chunk: int, hashes: list[str], recorded_at: datetime) -> dict[str, Any]:
    return head_record(head, recorded_at) | {"chunk": chunk, "phone_hashes": hashes}


def read_record(record: dict[str, Any]) -> tuple[SnapshotHead, int | None, list[str]]:
    """(the head the record belongs to, its chunk number or None for the head, its hashes)."""
    head = SnapshotHead(
        Register(record["register"]),
        str(record["snapshot_id"]),
        record["published"],
        int(record["listed"]),
        int(record["chunks"]),
        bool(record.get("forced", False)),
    )
    chunk = record.get("chunk")
    return head, None if chunk is None else int(chunk), list(record.get("phone_hashes") or ())


class RegisterPublisher:
    """Writes an accepted snapshot to the register topic: chunks, head, then tombstones."""

    def __init__(self, kafka: KafkaOptions, topic: str, encoder: AvroEncoder) -> None:
        self._kafka = kafka
        self._topic = topic
        self._encoder = encoder
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()  # one import at a time per replica: each tombstones the one before

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def publish(
        self, register: Register, published: date, hashes: Set[str], forced: bool, previous: SnapshotHead | None
    ) -> SnapshotHead:
        async with self._lock:
            producer = await self._started()
            head = SnapshotHead(
                register, uuid.uuid4().hex, published, len(hashes), -(-len(hashes) // CHUNK_SIZE), forced
            )
            now = datetime.now(UTC)
            trace = cloudevents.TraceParent.start()
            sent: list[asyncio.Future[Any]] = []
            try:
                for n, batch in enumerate(chunked(hashes, CHUNK_SIZE)):
                    value = self._encoder.encode(chunk_record(head, n, batch, now))
                    key = chunk_key(register, head.snapshot_id, n).encode()
                    headers = _headers(cloudevents.EventType.REGISTER_CHUNK, now, trace)
                    sent.append(await producer.send(self._topic, value, key=key, headers=headers))
                    await asyncio.sleep(0)  # encoding a large file is the loop's time too
                await asyncio.gather(*sent)
                await producer.send_and_wait(
                    self._topic,
                    self._encoder.encode(head_record(head, now)),
                    key=head_key(register).encode(),
                    headers=_headers(cloudevents.EventType.REGISTER_SNAPSHOT, now, trace),
                )
            except KafkaError:
                await self._tombstone(head.chunk_keys(), trace)  # an abandoned snapshot must not linger
                raise
            if previous is not None and previous.snapshot_id != head.snapshot_id:
                await self._tombstone(previous.chunk_keys(), trace)
            log.info(
                "register %s snapshot %s published: %d numbers in %d chunks",
                register,
                head.snapshot_id,
                head.listed,
                head.chunks,
            )
            return head

    async def _started(self) -> AIOKafkaProducer:
        if not self._encoder.ready:
            await self._encoder.register()
        if self._producer is None:
            producer = idempotent_producer(self._kafka, max_request_size=4 * 1024 * 1024)
            await producer.start()
            self._producer = producer
        return self._producer

    async def _tombstone(self, keys: list[str], trace: cloudevents.TraceParent) -> None:
        if self._producer is None:
            return
        removed = cloudevents.EventType.REGISTER_CHUNK_REMOVED
        try:
            sent = [
                await self._producer.send(
                    self._topic, None, key=key.encode(), headers=_headers(removed, datetime.now(UTC), trace, None)
                )
                for key in keys
            ]
            await asyncio.gather(*sent)
        except KafkaError as exc:  # the chunks stay on the topic: harmless, no head names them
            log.warning("could not tombstone %d register chunks: %s", len(keys), type(exc).__name__)


def _headers(
    event_type: cloudevents.EventType,
    at: datetime,
    trace: cloudevents.TraceParent,
    content_type: str | None = cloudevents.AVRO_CONFLUENT,
) -> cloudevents.Headers:
    """One span per record in the publication's trace."""
    return cloudevents.cloud_event_headers(
        event_type, cloudevents.SUPPRESSION_SERVICE, at, content_type=content_type, trace=trace.child()
    )
