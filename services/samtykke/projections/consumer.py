"""The projector's consumer: a plain aiokafka member of the domain's group, handing the applier whole
fetches, resuming from the positions stored in PostgreSQL.

Faust's stream path cost about half of a projector's CPU: its consumer runs aiokafka on a thread of
its own, hands every record across to the app's loop, and wraps each in a Message and an Event queued
per stream before `take_events` batches them again. Here one `getmany` is one batch, read on the app's
loop. The Faust app still hosts the projector (worker, web pages, producer, tasks).

Positions: on every assignment each partition goes to its last applied offset + 1 from the projection's
offsets table, or to the earliest retained offset when nothing was applied yet (also when a stored
position was deleted by retention: `auto_offset_reset`). Group offsets are committed after each batch's
transaction (`advise`), for Kafka's tools only: PostgreSQL is the position.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from .messages import RawMessage

log = logging.getLogger(__name__)

# assigned partitions -> next offset to read per partition (None: nothing applied yet)
StoredPositions = Callable[[set[TopicPartition]], Awaitable[Mapping[TopicPartition, int | None]]]

# A fetch asks the broker for a batch's worth of bytes, waiting at most a fraction of the batch window:
# under a steady flow a fetch for every message or two would cost more than applying them.
FETCH_MIN_BYTES = 16 * 1024
FETCH_MAX_WAIT_MS = 20
SESSION_TIMEOUT_MS = 10_000  # a projector that died (SIGKILL) loses its partitions within ~10 s
HEARTBEAT_INTERVAL_MS = 3_000


class ProjectorConsumer(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self,
        options: dict[str, Any],
        group: str,
        topics: list[str],
        stored_positions: StoredPositions,
        batch_size: int,
        batch_seconds: float,
        metadata_max_age_ms: int,
    ) -> None:
        self._topics = topics
        self._stored_positions = stored_positions
        self._batch_size = batch_size
        self._batch_ms = max(1, int(batch_seconds * 1000))
        self.rebalancing = True
        self._consumer: AIOKafkaConsumer | None = None
        self._options = dict(
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=batch_size,
            fetch_min_bytes=FETCH_MIN_BYTES,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
            # partitions added at run time: the metadata refresh sees them and the group rebalances
            metadata_max_age_ms=metadata_max_age_ms,
            **options,
        )

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(**self._options)  # on the running loop: aiokafka binds to it
        self._consumer.subscribe(self._topics, listener=self)
        await self._consumer.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    @property
    def _started(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "start() first"
        return self._consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.rebalancing = True

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if assigned:
            stored = await self._stored_positions(set(assigned))
            positions: dict[TopicPartition, int | None] = {tp: stored.get(tp) for tp in assigned}
            fresh = [tp for tp, offset in positions.items() if offset is None]
            if fresh:  # nothing applied yet: from the oldest record still kept
                positions |= await self._started.beginning_offsets(fresh)
            for tp, offset in positions.items():
                self._started.seek(tp, offset)
            log.info(
                "resuming from PostgreSQL positions: %s",
                ", ".join(f"{tp.topic}[{tp.partition}]@{o}" for tp, o in sorted(positions.items())),
            )
        self.rebalancing = False

    async def batches(self) -> AsyncIterator[list[RawMessage]]:
        """Up to a batch of messages at a time, as soon as some are fetched (latency while the stream is
        quiet, whole batches while there is a backlog)."""
        while True:
            fetched = await self._started.getmany(timeout_ms=self._batch_ms, max_records=self._batch_size)
            messages = [
                RawMessage(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers or ()))
                for records in fetched.values()
                for r in records
            ]
            if messages:
                yield messages

    async def advise(self, applied: Mapping[tuple[str, int], int]) -> None:
        """Commit the positions after the last applied offsets to the group, after PostgreSQL did: advice
        for `kafka-consumer-groups` and lag exporters; the table stays the truth on restart, so a failure
        is only logged."""
        assigned = self._started.assignment()
        mine = {tp: o + 1 for (t, p), o in applied.items() if (tp := TopicPartition(t, p)) in assigned}
        try:
            if mine:
                await self._started.commit(mine)
        except Exception as exc:
            log.warning("could not commit positions to the consumer group: %s", type(exc).__name__)

    def assignment(self) -> set[TopicPartition]:
        assigned: set[TopicPartition] = self._consumer.assignment() if self._consumer is not None else set()
        return assigned

    def highwater(self, topic: str, partition: int) -> int | None:
        end: int | None = self._started.highwater(TopicPartition(topic, partition))
        return end
