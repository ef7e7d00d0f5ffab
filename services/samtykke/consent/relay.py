"""The outbox relay: publishes committed outbox rows to Kafka in commit order per subject, and a
watermark saying how far what was committed is on the topics.

Woken by LISTEN/NOTIFY (with a slow poll as a safety net). Only the leader publishes
(`leadership.py`: an advisory lock fenced by a lease), so per-subject order follows outbox ids,
which the per-subject row lock makes follow commit order. Rows are marked published only after
Kafka acknowledged them; a crash in between republishes them (at-least-once; consumers dedupe
by version). Every record carries the CloudEvents headers (`adapters.cloudevents`), its event id as
`ce_id`.

Each round reads the unpublished rows in one database snapshot taken at T (the database's clock),
publishes them and waits for the acknowledgements, then reads the end offsets of every partition
and publishes the watermark (T, offsets): every commit acknowledged before T was in the snapshot,
so it is below those offsets. With nothing to publish T still advances, about twice a second.

Records are keyed by the outbox row's key (a consent's `<subject_id>/<purpose>/<channel or ->` on
the changes topic, the subject id on the subjects topic) and partitioned by subject alone
(`domain.consent_keys.subject_partition`: Kafka's murmur2 of the subject id), so one subject's
changes stay ordered in one partition while compaction keeps the latest record of each consent. A
row without payload is a tombstone: a null value, no CloudEvents headers (it is no event).

Error policy: a row that cannot be encoded (a schema this build does not know, a record its schema
rejects) is poison: it moves to `consent.outbox_dead_letters` in the transaction that settles its
batch, and its subject is held in every watermark until an operator re-queues or discards it.
Anything else (Kafka or the registry down, a schema the registry refuses, the database) is
transient: retried with capped backoff, and no watermark is published meanwhile, so every reader
turns stale within its bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from samtykke.adapters import cloudevents
from samtykke.adapters.avro import AvroEncoder
from samtykke.domain.consent_keys import subject_of_key, subject_partition

from .leadership import ACK_SECONDS, STOP_SECONDS, LeadershipLost, Lease, RelayLeadership
from .metrics import ConsentMetrics
from .ports import Outbox, OutboxMessage
from .watermarks import TopicsUnavailable, WatermarkPublisher

log = logging.getLogger(__name__)

# a watermark at least this often while the relay can publish: every reader's freshness (the gate's
# index age) then stays well under a second when nothing changes
WATERMARK_SECONDS = 0.5
WATERMARK_MIN_SECONDS = 0.25  # and at most this often under load
REREGISTER_SECONDS = 30.0  # re-register the schemas (a registry that lost them gets them back)
_ENCODE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError)


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        outbox: Outbox,
        producer_factory: Callable[[], AIOKafkaProducer],
        encoders: dict[str, AvroEncoder],
        metrics: ConsentMetrics,
        batch_size: int,
        idle_poll_seconds: float,
        provision: Callable[[], Awaitable[None]],
        *,
        watermarks: WatermarkPublisher | None = None,
        backlog_batch_size: int | None = None,
    ) -> None:
        self._leadership = RelayLeadership(pool)
        self._outbox = outbox
        self._new_producer = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self._encoders = encoders
        self._metrics = metrics
        self._batch_size = batch_size
        # a round takes `batch_size` rows while the relay keeps up (latency: each change goes out at
        # once); each round that leaves rows behind doubles it up to `backlog_batch_size` (throughput:
        # fewer snapshots, settles and acknowledgement waits per row), and the first that empties the
        # outbox brings it back
        self._backlog_batch_size = max(batch_size, backlog_batch_size or batch_size)
        self._round_size = batch_size
        self._idle = idle_poll_seconds
        self._wake = asyncio.Event()
        self._provision = provision
        self._provisioned = False
        self._watermarks = watermarks
        self._last_watermark = float("-inf")  # monotonic
        self._last_registered = float("-inf")
        self.last_watermark_epoch = 0
        self.epoch = 0  # the leadership epoch this relay holds (0: standing by)
        self._more = False

    def _notified(self, *_: Any) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Run until cancelled: stand by, lead, and retry every failure with capped backoff."""
        backoff = _Backoff()
        while True:
            try:
                async with self._leadership.lead() as lease:
                    self.epoch = lease.epoch
                    self._metrics.relay_epoch.set(lease.epoch)
                    await self._serve(lease, backoff)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._metrics.relay_failures.inc()
                await self._drop_producer()
                log.warning("relay leadership ended, retrying in %.1fs: %s", backoff.delay, exc)
                await backoff.sleep()
            finally:
                self.epoch = 0
                self._metrics.relay_epoch.set(0)

    async def _serve(self, lease: Lease, backoff: _Backoff) -> None:
        await lease.connection.add_listener("consent_outbox", self._notified)
        try:
            while True:
                try:
                    await self._lead_rounds(lease, backoff)
                except (asyncio.CancelledError, LeadershipLost):
                    raise
                except Exception as exc:  # transient: keep the lock, retry after a pause
                    if isinstance(exc, TopicsUnavailable):
                        self._provisioned = False  # a broker that lost its topics gets them back
                    self._metrics.relay_failures.inc()
                    await self._drop_producer()
                    log.warning("relay failed, retrying in %.1fs: %s", backoff.delay, exc)
                    await backoff.sleep()
        except asyncio.CancelledError:
            if await self._drop_producer():  # nothing of ours is in flight: the next leader need not wait
                await lease.resign()
            raise
        finally:
            with contextlib.suppress(Exception):
                await lease.connection.remove_listener("consent_outbox", self._notified)

    async def _lead_rounds(self, lease: Lease, backoff: _Backoff) -> None:
        while True:
            self._wake.clear()  # before reading, so a NOTIFY during the round is not lost
            await lease.renew_if_due()
            await self._ensure_ready()
            await self.publish_batch(lease)
            backoff.reset()
            if not self._more:
                await self._wait_for_work()

    async def _drop_producer(self) -> bool:
        """A producer that failed is replaced: its buffers may hold sends we will redo. A producer that
        does not stop within `STOP_SECONDS` is cut off (its unsent batches are abandoned). True when it
        stopped cleanly."""
        producer, self._producer = self._producer, None
        if self._watermarks is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._watermarks.ends.stop(), timeout=STOP_SECONDS)
        if producer is None:
            return True
        try:
            await asyncio.wait_for(producer.stop(), timeout=STOP_SECONDS)
        except Exception as exc:  # already broken; we only want its resources back
            log.debug("discarding failed producer: %s", exc)
            await _abandon(producer)
            return False
        return True

    async def stop(self) -> None:
        await self._drop_producer()

    async def _ensure_ready(self) -> None:
        if not self._provisioned:
            await self._provision()
            self._provisioned = True
        if self._producer is None:
            producer = self._new_producer()
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        if self._watermarks is not None:
            await self._watermarks.ends.start()
        due = time.monotonic() - self._last_registered >= REREGISTER_SECONDS
        for encoder in self._all_encoders():
            if not encoder.ready:
                await encoder.register()
            elif due:  # a registry restarted empty gets our schemas back (and readers their ids)
                await encoder.ensure_registered()
        if due:
            self._last_registered = time.monotonic()

    def _all_encoders(self) -> list[AvroEncoder]:
        extra = [self._watermarks.encoder] if self._watermarks is not None else []
        return [*self._encoders.values(), *extra]

    async def _wait_for_work(self) -> None:
        timeout = self._idle
        if self._watermarks is not None:
            timeout = min(timeout, max(0.0, self._last_watermark + WATERMARK_SECONDS - time.monotonic()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    async def publish_batch(self, lease: Lease | None = None) -> int:
        """One round: publish what one snapshot holds (up to the batch size), settle it, then a
        watermark when the snapshot was complete and one is due. Returns the rows settled."""
        producer = self._producer
        assert producer is not None
        snapshot = await self._outbox.snapshot(self._round_size)
        poison: list[tuple[OutboxMessage, str]] = []
        if snapshot.pending:
            if lease is not None:
                lease.check()
            poison = await self._publish(producer, snapshot.pending)
        if snapshot.complete and self._watermarks is not None and self._watermark_due(bool(snapshot.pending)):
            if lease is not None:
                lease.check()
            held = snapshot.held | {subject_of_key(m.key) for m, _ in poison}
            epoch = lease.epoch if lease is not None else 0
            watermark = await asyncio.wait_for(
                self._watermarks.publish(producer, snapshot.taken_at, held, epoch), timeout=ACK_SECONDS
            )
            self._last_watermark = time.monotonic()
            self.last_watermark_epoch = epoch
            self._metrics.watermark_published(watermark.through)
        self._more = not snapshot.complete
        self._round_size = min(2 * self._round_size, self._backlog_batch_size) if self._more else self._batch_size
        return len(snapshot.pending)

    def _watermark_due(self, published: bool) -> bool:
        since = time.monotonic() - self._last_watermark
        return since >= (WATERMARK_MIN_SECONDS if published else WATERMARK_SECONDS * 0.9)

    async def _publish(
        self, producer: AIOKafkaProducer, messages: list[OutboxMessage]
    ) -> list[tuple[OutboxMessage, str]]:
        """Send the encodable rows, wait for their acknowledgement, then in one transaction mark them
        and move the poison ones aside. Returns the poison rows with their reasons."""
        sent: list[OutboxMessage] = []
        poison: list[tuple[OutboxMessage, str]] = []
        futures: list[asyncio.Future[Any]] = []
        partitions: dict[str, int] = {}
        # each partition's records go as whole batches, in outbox order: a send per record costs
        # ~10 us of aiokafka's per-message path, a batch ~2 us a record (docs/benchmarks.md)
        batches: dict[tuple[str, int], Any] = {}
        for m in messages:
            value, reason = self._encode(m)
            if reason:
                poison.append((m, reason))
                continue
            if m.topic not in partitions:
                partitions[m.topic] = len(await producer.partitions_for(m.topic))
            record = {
                "timestamp": None,
                "key": m.key.encode(),
                "value": value,
                "headers": outbox_headers(m) if m.payload is not None else [],
            }
            where = (m.topic, subject_partition(m.key, partitions[m.topic]))
            batch = batches.get(where)
            if batch is None or batch.append(**record) is None:  # a full batch closes itself
                if batch is not None:
                    futures.append(await producer.send_batch(batch, where[0], partition=where[1]))
                batch = batches[where] = producer.create_batch()
                batch.append(**record)  # the first record always fits
            sent.append(m)
        for (topic, partition), batch in batches.items():
            batch.close()
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        # a leader waits a bounded time: past it a new leader may start, so this one must stop
        await asyncio.wait_for(asyncio.gather(*futures), timeout=ACK_SECONDS)
        now = datetime.now(UTC)
        await self._outbox.settle([m.id for m in sent], [(m.id, reason) for m, reason in poison], now)
        for m in sent:
            self._metrics.published.labels(m.topic).inc()
            self._metrics.publish_latency.observe((now - m.created_at).total_seconds())
        for m, reason in poison:
            self._metrics.dead_lettered.labels(m.topic).inc()
            log.error("outbox row %d moved to the dead letters (its subject is held): %s", m.id, reason)
        return poison

    def _encode(self, message: OutboxMessage) -> tuple[bytes | None, str]:
        """The encoded value, or None and why the row can never be encoded (poison). A schema not
        registered yet raises: that is transient."""
        encoder = self._encoders.get(message.schema_name)
        if encoder is None or message.schema_name not in cloudevents.TYPE_OF_SCHEMA:
            return None, f"no Avro schema {message.schema_name!r} in this build"
        if message.payload is None:
            return None, ""  # a tombstone
        try:
            return encoder.encode(message.payload), ""
        except _ENCODE_ERRORS as exc:
            # the reason names the schema and the error's kind only: a record's values stay out of logs
            return None, f"{message.schema_name} rejects the record: {type(exc).__name__}"


def outbox_headers(message: OutboxMessage) -> cloudevents.Headers:
    """The CloudEvents headers of an encodable outbox row: its event id as `ce_id` (a republished
    copy keeps it), its `occurred_at` as `ce_time`, and a trace of its own."""
    payload = message.payload or {}
    event_id = payload.get("event_id")
    occurred = payload.get("occurred_at")
    at = occurred if isinstance(occurred, int) and not isinstance(occurred, bool) else message.created_at
    event_type = cloudevents.TYPE_OF_SCHEMA[message.schema_name]
    if not isinstance(event_id, str):
        return cloudevents.cloud_event_headers(event_type, cloudevents.CONSENT_SERVICE, at)
    return cloudevents.cloud_event_headers(
        event_type, cloudevents.CONSENT_SERVICE, at, event_id=event_id, trace=cloudevents.event_trace(event_id)
    )


class _Backoff:
    def __init__(self) -> None:
        self.delay = 0.2

    def reset(self) -> None:
        self.delay = 0.2

    async def sleep(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, 5.0)


async def _abandon(producer: AIOKafkaProducer) -> None:
    """Stop a producer without flushing: cancel its sender and close its connections."""
    sender = getattr(producer, "_sender", None)
    task = getattr(sender, "sender_task", None)
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
    with contextlib.suppress(Exception):
        await producer.client.close()


async def outbox_status(pool: asyncpg.Pool) -> dict[str, Any]:
    row = await pool.fetchrow(
        "SELECT count(*) AS backlog, min(created_at) AS oldest, "
        "(SELECT count(*) FROM consent.outbox_dead_letters) AS dead_letters "
        "FROM consent.outbox WHERE published_at IS NULL"
    )
    assert row is not None
    age = (datetime.now(UTC) - row["oldest"]).total_seconds() if row["oldest"] else 0.0
    return {"backlog": row["backlog"], "oldest_age_seconds": round(age, 3), "dead_letters": row["dead_letters"]}


async def watch_outbox(pool: asyncpg.Pool, metrics: ConsentMetrics, every: float) -> None:
    """Keep the backlog gauges current on their own clock: a view the relay updated itself would
    freeze exactly when the relay is stuck, which is when the outbox alerts must see it grow."""
    while True:
        try:
            status = await outbox_status(pool)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("outbox status unavailable: %s", type(exc).__name__)
        else:
            metrics.outbox_backlog.set(status["backlog"])
            metrics.outbox_oldest_age.set(status["oldest_age_seconds"])
            metrics.outbox_dead_letters.set(status["dead_letters"])
        await asyncio.sleep(every)
