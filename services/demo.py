"""`samtykke demo`: one consent change through the running platform, shown as it lands on Kafka."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from samtykke.adapters.avro import AvroDecoder, SchemaRegistry
from samtykke.adapters.kafka import ensure_topics
from samtykke.adapters.settings import Settings

HEADERS = {"Authorization": "Bearer dev-writer"}


async def _end_offsets(consumer: AIOKafkaConsumer, topic: str) -> dict[TopicPartition, int]:
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    return ends


async def _arrivals(consumer: AIOKafkaConsumer, decoder: AvroDecoder, count: int, timeout: float) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        for messages in (await consumer.getmany(timeout_ms=200)).values():
            for message in messages:
                record = await decoder.decode(message.value)
                record["_kafka"] = {"partition": message.partition, "offset": message.offset,
                                    "key": message.key.decode() if message.key else None,
                                    "schema_id": decoder.schema_id(message.value)}
                found.append(record)
    return found


async def run(settings: Settings) -> int:
    base = f"http://{settings.http_host}:{settings.consent_port}"
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    registry = SchemaRegistry(settings.registry_url)
    await ensure_topics(settings.kafka_bootstrap, settings.topic_changes, settings.topic_subjects,
                        settings.topic_partitions)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        ends = await _end_offsets(consumer, settings.topic_changes)
        consumer.assign(list(ends))
        for partition, offset in ends.items():
            consumer.seek(partition, offset)
        async with httpx.AsyncClient(base_url=base, headers=HEADERS, timeout=30) as client:
            subject = (await client.post("/v1/subjects", json={"kind": "consumer", "country": "DK",
                                                               "identifiers": {"phone": "+45 12 34 56 78"}})).json()
            print(f"registered subject {subject['subject_id']} (phone kept encrypted; only a keyed hash leaves)")
            body = {"decisions": [{"purpose": "direct_marketing", "channel": "sms", "action": "grant"}],
                    "source": "self_service", "actor": {"kind": "subject"}, "notice_version": "dm-2026-01"}
            started = time.perf_counter()
            response = await client.post(f"/v1/subjects/{subject['subject_id']}/consents", json=body)
            response.raise_for_status()
            print("granted direct_marketing/sms; waiting for the event on", settings.topic_changes)
        events = await _arrivals(consumer, AvroDecoder(registry), 1, timeout=30)
        if not events:
            print("no event arrived within 30 s: check `samtykke stack status` and .state/logs/consent.log")
            return 1
        elapsed = (time.perf_counter() - started) * 1000
        print(f"decoded from Kafka after {elapsed:.0f} ms (Avro, Confluent wire format, schema from the registry):")
        print(json.dumps(events[0], indent=2, default=str))
        return 0
    finally:
        await consumer.stop()
        await registry.aclose()


def main(settings: Settings) -> int:
    return asyncio.run(run(settings))
