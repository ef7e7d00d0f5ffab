"""Kafka clients: topic provisioning, the idempotent producer settings every writer uses, and
reading every partition of some topics from a chosen position without a consumer group."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

LONG_RETENTION_MS = str(10 * 365 * 24 * 3600 * 1000)
# where an assigned consumer starts: each partition's oldest kept offset, its end, or given offsets
Start = Literal["beginning", "end"] | Mapping[TopicPartition, int]
_TOPIC_POLL_SECONDS = 0.2


class TopicsMissing(RuntimeError):
    """Topics to read do not exist (yet): their owner creates them, a reader never does."""

    def __init__(self, topics: Sequence[str]) -> None:
        super().__init__(f"no such topic: {', '.join(topics)}")
        self.topics = tuple(topics)


async def ensure_topics(
    bootstrap: str,
    changes: str,
    subjects: str,
    partitions: int,
    extra: list[str] | None = None,
    watermarks: str | None = None,
) -> None:
    """Create the contract topics if missing: changes kept long, subjects compacted, and the
    relay's watermarks (one partition, compacted: only the latest watermark matters)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(changes, partitions, 1, topic_configs={"retention.ms": LONG_RETENTION_MS}),
            NewTopic(subjects, partitions, 1, topic_configs={"cleanup.policy": "compact"}),
        ]
        wanted += [NewTopic(name, 1, 1, topic_configs={"retention.ms": LONG_RETENTION_MS}) for name in extra or []]
        if watermarks is not None:
            wanted.append(NewTopic(watermarks, 1, 1, topic_configs={"cleanup.policy": "compact"}))
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # a replica created it at the same time
                await admin.create_topics(missing)
    finally:
        await admin.close()


def idempotent_producer(bootstrap: str, **overrides: object) -> AIOKafkaProducer:
    """acks=all + idempotence: a retried send is written once, in order per partition."""
    options: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 15000,
        "compression_type": None,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


async def topic_partitions(
    bootstrap: str, topics: Sequence[str], wait_seconds: float | None = 0.0
) -> list[TopicPartition]:
    """Every partition of `topics`, in topic then partition order, as the cluster has them now.

    A missing topic is waited for up to `wait_seconds` (None: for as long as it takes), then
    `TopicsMissing`. Asked through the admin API for *all* topics: a metadata request naming a
    topic would create it on a broker that allows automatic creation, with the wrong settings.
    """
    deadline = None if wait_seconds is None else time.monotonic() + wait_seconds
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        while True:
            found = {t["topic"]: _partition_numbers(t) for t in await admin.describe_topics()}
            missing = [topic for topic in topics if not found.get(topic)]
            if not missing:
                return [TopicPartition(topic, p) for topic in topics for p in found[topic]]
            if deadline is not None and time.monotonic() >= deadline:
                raise TopicsMissing(missing)
            await asyncio.sleep(_TOPIC_POLL_SECONDS)
    finally:
        await admin.close()


def _partition_numbers(described: Mapping[str, Any]) -> list[int]:
    if described.get("error_code"):
        return []
    return sorted(int(p["partition"]) for p in described.get("partitions", ()))


async def assign_all(
    consumer: AIOKafkaConsumer,
    bootstrap: str,
    topics: Sequence[str],
    start: Start,
    wait_seconds: float | None = 0.0,
) -> list[TopicPartition]:
    """Assign every partition of `topics` to a started, group-less consumer and position it at
    `start` (with offsets: a partition not named starts at the beginning); returns the partitions.
    `bootstrap` must be the consumer's own; `wait_seconds` is as for `topic_partitions`."""
    partitions = await topic_partitions(bootstrap, topics, wait_seconds)
    consumer.assign(partitions)
    if start == "beginning":
        await consumer.seek_to_beginning(*partitions)
    elif start == "end":
        await consumer.seek_to_end(*partitions)
    else:
        assert not isinstance(start, str), start
        rest = [tp for tp in partitions if tp not in start]
        if rest:
            await consumer.seek_to_beginning(*rest)
        for tp in partitions:
            if tp in start:
                consumer.seek(tp, start[tp])
    return partitions


async def present_partitions(bootstrap: str, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition the cluster has now of those of `topics` that exist (no waiting, no error for
    a missing one): what a reader polls every few seconds to find partitions added at run time."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        found = {t["topic"]: _partition_numbers(t) for t in await admin.describe_topics()}
    finally:
        await admin.close()
    return [TopicPartition(topic, p) for topic in topics for p in found.get(topic, ())]


async def extend_assignment(
    consumer: AIOKafkaConsumer, added: Sequence[TopicPartition], start: Mapping[TopicPartition, int] | None = None
) -> None:
    """Add partitions to a group-less consumer's assignment; each starts at `start`'s offset or at
    its beginning. `assign()` replaces the assignment and forgets positions, so the partitions
    already read are put back where they were (call between polls, with every record applied)."""
    current = {tp: await consumer.position(tp) for tp in consumer.assignment()}
    consumer.assign([*current, *(tp for tp in added if tp not in current)])
    for tp, position in current.items():
        consumer.seek(tp, position)
    given = start or {}
    rest = [tp for tp in added if tp not in current and tp not in given]
    if rest:
        await consumer.seek_to_beginning(*rest)
    for tp in added:
        if tp in given and tp not in current:
            consumer.seek(tp, given[tp])


async def ensure_topic(bootstrap: str, name: str, partitions: int, configs: Mapping[str, str]) -> None:
    """Create one topic its owner writes, if missing (a replica creating it at the same time is fine)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if name not in set(await admin.list_topics()):
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=dict(configs))])
    finally:
        await admin.close()
