"""RegisterFeed: every replica reads the register topic from the beginning and applies the current
snapshot of every register, so all replicas answer alike, after a restart and after a scale-up.

Readiness: caught up to the topic's end offset seen at start. Error policy, failing closed: a
head whose snapshot cannot be assembled (a chunk missing or undecodable, the count wrong) or a
head that cannot be decoded takes the register out of use — its phone and post decisions turn
`stale` — until a good head arrives; a registry outage is retried with backoff; Kafka errors are
retried by the client. The topic is written only by this service, so nothing is dead-lettered:
the failure is logged by offset, counted, and visible as `stale`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge

from samtykke.adapters.avro import AvroDecoder, RegistryError, UndecodableMessage
from samtykke.adapters.kafka import KafkaOptions, assign_all, ensure_topic
from samtykke.domain.registers import (
    IncompleteSnapshot,
    Register,
    SnapshotAssembly,
    SnapshotHead,
    parse_key,
)

from .register_apply import RegisterApplier
from .register_topic import TOPIC_CONFIGS, read_record

log = logging.getLogger(__name__)


class RegisterMetrics:
    """Series of the register topic, by register (bounded) and outcome (bounded)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.published = Gauge(
            "samtykke_suppression_register_published_timestamp_seconds",
            "Publication date (UTC midnight) of the register snapshot in use; 0 when none is",
            ["register"],
            registry=registry,
        )
        self.listed = Gauge(
            "samtykke_suppression_register_listed_numbers",
            "Numbers listed by the register snapshot in use",
            ["register"],
            registry=registry,
        )
        self.imports = Counter(
            "samtykke_suppression_register_imports_total",
            "Register imports taken by this replica: published, forced (over a refusal rule) or refused",
            ["register", "outcome"],
            registry=registry,
        )
        self.unusable = Counter(
            "samtykke_suppression_register_unusable_total",
            "Register snapshots or records this replica could not use (the register turns stale)",
            ["register"],
            registry=registry,
        )


class RegisterFeed:
    def __init__(
        self,
        kafka: KafkaOptions,
        topic: str,
        decoder: AvroDecoder,
        applier: RegisterApplier,
        metrics: RegisterMetrics,
    ) -> None:
        self._kafka = kafka
        self._topic = topic
        self._decoder = decoder
        self._applier = applier
        self._metrics = metrics
        self._assembly = SnapshotAssembly()
        self.heads: dict[Register, SnapshotHead] = {}  # the snapshot in use per register
        self.matched: dict[str, int] = {}  # snapshot id -> indexed subjects it lists, once applied here
        self.unusable: dict[str, str] = {}  # snapshot id -> why this replica could not use it
        self.caught_up = asyncio.Event()

    async def run(self) -> None:
        await ensure_topic(self._kafka, self._topic, 1, TOPIC_CONFIGS)
        consumer = AIOKafkaConsumer(
            **self._kafka,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=200,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        await consumer.start()
        try:
            partitions = await assign_all(consumer, self._kafka, [self._topic], "beginning", wait_seconds=None)
            ends = await consumer.end_offsets(partitions)
            while True:
                try:
                    batches = await consumer.getmany(timeout_ms=200, max_records=50)
                except KafkaError as exc:
                    log.warning("register topic fetch failed (%s); retrying", type(exc).__name__)
                    await asyncio.sleep(0.5)
                    continue
                for messages in batches.values():
                    for message in messages:
                        await self._apply(message)
                if not self.caught_up.is_set() and all([await consumer.position(tp) >= ends[tp] for tp in partitions]):
                    self.caught_up.set()
                    log.info(
                        "register topic caught up: %s",
                        {r.value: h.published.isoformat() for r, h in self.heads.items()},
                    )
                await self._applier.record_flips()
        finally:
            await consumer.stop()

    async def applied(self, snapshot_id: str, timeout: float) -> int:
        """Wait until this replica applied the snapshot; its matched count. LookupError if it could not."""
        deadline = time.monotonic() + timeout
        while snapshot_id not in self.matched:
            if snapshot_id in self.unusable:
                raise LookupError(self.unusable[snapshot_id])
            if time.monotonic() > deadline:
                raise LookupError(f"snapshot {snapshot_id} not applied within {timeout:.0f}s")
            await asyncio.sleep(0.05)
        return self.matched[snapshot_id]

    async def _apply(self, message: Any) -> None:
        try:
            register, snapshot_id, chunk = parse_key((message.key or b"").decode("utf-8", "replace"))
        except ValueError:
            log.error("register topic record @%d has no register key; ignored", message.offset)
            return
        if message.value is None:  # a tombstone
            if snapshot_id is not None:
                self._assembly.drop(register, snapshot_id)
            else:
                await self._out_of_use(register, "its head was tombstoned")
            return
        try:
            head, number, hashes = read_record(await self._decode(message.value))
        except (UndecodableMessage, KeyError, TypeError, ValueError) as exc:
            log.error("register %s record @%d undecodable: %s", register, message.offset, str(exc)[:300])
            self._metrics.unusable.labels(register.value).inc()
            if chunk is None:
                await self._out_of_use(register, "its head could not be decoded")
            return  # a lost chunk makes its head incomplete: the register turns stale there
        if number is not None:
            self._assembly.chunk(register, head.snapshot_id, number, hashes)
            return
        try:
            snapshot = self._assembly.complete(head)
        except IncompleteSnapshot as exc:
            log.error("%s", exc)
            self._metrics.unusable.labels(register.value).inc()
            self.unusable[head.snapshot_id] = str(exc)
            await self._out_of_use(register, "its snapshot is incomplete")
            return
        started = time.perf_counter()
        self.heads[register] = head
        self.matched[head.snapshot_id] = await self._applier.install(snapshot)
        self._metrics.published.labels(register.value).set(snapshot.fresh_until(0))
        self._metrics.listed.labels(register.value).set(head.listed)
        log.info(
            "register %s snapshot %s (published %s%s) applied: %d numbers, %d indexed subjects listed, %.2fs",
            register,
            head.snapshot_id,
            head.published,
            ", forced" if head.forced else "",
            head.listed,
            self.matched[head.snapshot_id],
            time.perf_counter() - started,
        )

    async def _out_of_use(self, register: Register, why: str) -> None:
        log.error("register %s taken out of use (decisions relying on it are stale): %s", register, why)
        self.heads.pop(register, None)
        self._metrics.published.labels(register.value).set(0)
        self._metrics.listed.labels(register.value).set(0)
        await self._applier.withdraw(register)

    async def _decode(self, value: bytes) -> dict[str, Any]:
        backoff = 0.2
        while True:
            try:
                record: dict[str, Any] = await self._decoder.decode(value)
                return record
            except RegistryError as exc:
                if not exc.retriable:
                    raise UndecodableMessage(str(exc)) from exc
                log.warning("schema registry unavailable; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
