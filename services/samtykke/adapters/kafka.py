"""Kafka clients: topic provisioning and the idempotent producer settings every writer uses."""

from __future__ import annotations

import contextlib

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

LONG_RETENTION_MS = str(10 * 365 * 24 * 3600 * 1000)


async def ensure_topics(
    bootstrap: str, changes: str, subjects: str, partitions: int, extra: list[str] | None = None
) -> None:
    """Create the contract topics if missing: changes kept long, subjects compacted."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(changes, partitions, 1, topic_configs={"retention.ms": LONG_RETENTION_MS}),
            NewTopic(subjects, partitions, 1, topic_configs={"cleanup.policy": "compact"}),
        ]
        wanted += [NewTopic(name, 1, 1, topic_configs={"retention.ms": LONG_RETENTION_MS}) for name in extra or []]
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
