"""Reading every partition of some topics from a chosen position, without a consumer group
(`adapters.kafka.assign_all`), as the suppression feed, the rebuild and the demo do."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from samtykke.adapters.kafka import KafkaOptions, TopicsMissing, assign_all, topic_partitions

from ..conftest import StackEndpoints


async def create(kafka: KafkaOptions, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(**kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


@pytest.fixture
async def topics(stack: StackEndpoints) -> AsyncIterator[tuple[str, str]]:
    prefix = f"t{uuid.uuid4().hex}"
    names = (f"{prefix}.a", f"{prefix}.b")
    await create(stack.kafka, names[0], 3)
    await create(stack.kafka, names[1], 2)
    yield names
    admin = AIOKafkaAdminClient(**stack.kafka)
    await admin.start()
    try:
        await admin.delete_topics(list(names))
    finally:
        await admin.close()


async def test_every_partition_of_each_topic_in_order(stack: StackEndpoints, topics: tuple[str, str]) -> None:
    a, b = topics
    found = await topic_partitions(stack.kafka, [b, a], wait_seconds=10)
    assert found == [TopicPartition(b, 0), TopicPartition(b, 1), *(TopicPartition(a, p) for p in range(3))]


async def test_a_missing_topic_is_waited_for_then_named(stack: StackEndpoints, topics: tuple[str, str]) -> None:
    later = f"{topics[0]}.later"
    with pytest.raises(TopicsMissing) as missing:
        await topic_partitions(stack.kafka, [topics[0], later], wait_seconds=0.5)
    assert missing.value.topics == (later,)

    async def create_later() -> None:  # as its owner would, while the reader waits
        await asyncio.sleep(1.0)
        await create(stack.kafka, later, 1)

    creating = asyncio.create_task(create_later())
    try:
        assert await topic_partitions(stack.kafka, [later], wait_seconds=None) == [TopicPartition(later, 0)]
        await creating
    finally:
        admin = AIOKafkaAdminClient(**stack.kafka)
        await admin.start()
        await admin.delete_topics([later])
        await admin.close()


async def test_a_consumer_starts_at_the_beginning_the_end_or_given_offsets(
    stack: StackEndpoints, topics: tuple[str, str]
) -> None:
    a, b = topics
    producer = AIOKafkaProducer(**stack.kafka)
    await producer.start()
    try:
        for n in range(5):
            await producer.send_and_wait(a, f"m{n}".encode(), partition=1)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(**stack.kafka, enable_auto_commit=False)
    await consumer.start()
    try:
        positions = {}
        for start in ("beginning", "end", {TopicPartition(a, 1): 3}):
            assigned = await assign_all(consumer, stack.kafka, [a, b], start)
            assert set(assigned) == consumer.assignment() and len(assigned) == 5
            positions[str(start)] = [await consumer.position(TopicPartition(a, p)) for p in range(3)]
        assert list(positions.values()) == [[0, 0, 0], [0, 5, 0], [0, 3, 0]]
        records = await consumer.getmany(TopicPartition(a, 1), timeout_ms=5000)
        assert [r.value for r in records[TopicPartition(a, 1)]] == [b"m3", b"m4"]
    finally:
        await consumer.stop()
