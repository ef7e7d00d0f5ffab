"""Reads the contract topics from their beginning with a plain aiokafka consumer (no group).

Used by the rebuild, which must read every partition itself, know when it has reached a given
position, and never join (and so disturb) the live projector's consumer group.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from samtykke.adapters.kafka import KafkaOptions, assign_all
from samtykke.adapters.progress import Progress

from .messages import RawMessage

ApplyBatch = Callable[[Sequence[RawMessage]], Awaitable[Any]]


class TopicReplay:
    def __init__(self, kafka: KafkaOptions, topics: Sequence[str], batch_size: int) -> None:
        self._kafka = kafka
        self._topics = list(topics)
        self._batch_size = batch_size
        self._consumer = AIOKafkaConsumer(
            **kafka,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=batch_size,
        )
        self.partitions: list[TopicPartition] = []

    async def start(self, timeout: float = 30.0) -> None:
        """Assign every partition from its beginning; `TopicsMissing` when a topic is not there in time."""
        await self._consumer.start()
        self.partitions = await assign_all(self._consumer, self._kafka, self._topics, "beginning", timeout)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def end_offsets(self) -> dict[TopicPartition, int]:
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets(self.partitions)
        return ends

    async def remaining(self, until: Mapping[TopicPartition, int]) -> int:
        total = 0
        for tp, end in until.items():
            total += max(0, end - await self._consumer.position(tp))
        return total

    async def drain(self, until: Mapping[TopicPartition, int], apply: ApplyBatch, progress: Progress | None) -> None:
        """Apply batches until every partition's position reached `until` (it may pass it)."""
        pending = [tp for tp, end in until.items() if await self._consumer.position(tp) < end]
        while pending:
            fetched = await self._consumer.getmany(*pending, timeout_ms=500, max_records=self._batch_size)
            messages = [
                RawMessage(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers or ()))
                for records in fetched.values()
                for r in records
            ]
            if messages:
                await apply(messages)
                if progress is not None:
                    progress.advance(len(messages))
            pending = [tp for tp in pending if await self._consumer.position(tp) < until[tp]]
