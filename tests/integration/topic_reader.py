"""Reads a topic the way a downstream team would: a plain aiokafka consumer and the registry.

Decoding here deliberately does not use the project's codec: it fetches the writer schema by
the id in the Confluent header straight from the registry's REST API and reads the body with
fastavro, so a test proves the wire format, not our own round trip.
"""

from __future__ import annotations

import io
import json
import struct
import time
from dataclasses import dataclass
from typing import Any

import fastavro
import httpx
from aiokafka import AIOKafkaConsumer

from samtykke.adapters.kafka import KafkaOptions, TopicsMissing, assign_all


@dataclass(frozen=True)
class RawMessage:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


async def read_raw(kafka: KafkaOptions, topic: str, count: int, timeout: float = 60.0) -> list[RawMessage]:
    """Every message from the start of all partitions, until `count` arrived or `timeout`;
    `kafka` is `client_options(settings)`."""
    consumer = AIOKafkaConsumer(**kafka, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        try:
            await assign_all(consumer, kafka, [topic], "beginning", wait_seconds=timeout)
        except TopicsMissing:
            return []
        found: list[RawMessage] = []
        while len(found) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=300)
            for messages in batches.values():
                found += [RawMessage(m.partition, m.offset, m.key, m.value) for m in messages]
        return found
    finally:
        await consumer.stop()


async def decode_all(registry_url: str, messages: list[RawMessage]) -> list[dict[str, Any]]:
    schemas: dict[int, Any] = {}
    records = []
    async with httpx.AsyncClient(base_url=registry_url) as client:
        for message in messages:
            assert message.value is not None and message.value[0] == 0, "Confluent magic byte"
            (schema_id,) = struct.unpack(">I", message.value[1:5])
            if schema_id not in schemas:
                response = await client.get(f"/schemas/ids/{schema_id}")
                response.raise_for_status()
                schemas[schema_id] = fastavro.parse_schema(json.loads(response.json()["schema"]))
            record = fastavro.schemaless_reader(io.BytesIO(message.value[5:]), schemas[schema_id], None)
            records.append(
                dict(record) | {"_key": message.key, "_partition": message.partition, "_offset": message.offset}
            )
    return records
