"""The real stack answers real clients: SQL, Kafka produce/consume, Avro schemas,
and a broker restart that keeps its topics (what the outbox relay relies on)."""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from samtykke import devstack
from samtykke.adapters.kafka import KafkaOptions

if TYPE_CHECKING:  # fixtures come from conftest; only their types are needed here
    from tests.conftest import StackEndpoints, TopicNames

pytestmark = pytest.mark.stack

SCHEMA_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


async def create_topic(kafka: KafkaOptions, name: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(**kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


async def topic_exists(kafka: KafkaOptions, name: str) -> bool:
    admin = AIOKafkaAdminClient(**kafka)
    await admin.start()
    try:
        return name in await admin.list_topics()
    finally:
        await admin.close()


async def produce(kafka: KafkaOptions, topic: str, key: bytes, value: bytes) -> None:
    producer = AIOKafkaProducer(**kafka, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def consume_values(kafka: KafkaOptions, topic: str, count: int, timeout: float = 20) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, **kafka, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout
        while len(values) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            values += [record.value for records in batches.values() for record in records if record.value is not None]
    finally:
        await consumer.stop()
    return values


def test_second_up_is_a_no_op(local_stack: StackEndpoints) -> None:
    lines: list[str] = []
    began = time.monotonic()
    devstack.up(report=lines.append)
    elapsed = time.monotonic() - began

    for part in devstack.PART_NAMES:
        assert any(line.startswith(f"{part}: already running") for line in lines), lines
    assert "stack: already running" in lines
    assert not any("starting" in line or "installing" in line for line in lines), lines
    assert elapsed < 15


def test_status_shows_every_part_running_and_ready(local_stack: StackEndpoints) -> None:
    rows = devstack.status()

    assert [row.name for row in rows] == list(devstack.PART_NAMES)
    for row in rows:
        assert row.running and row.ready and row.pid is not None, row
    endpoints = {row.name: row.endpoint for row in rows}
    assert endpoints["kafka"] == local_stack.kafka_bootstrap
    assert endpoints["registry"] == local_stack.registry_url.rstrip("/")
    assert "***" in endpoints["postgres"]  # printed without the password


async def test_sql_works_in_a_fresh_database(fresh_database: str) -> None:
    connection = await asyncpg.connect(fresh_database)
    try:
        await connection.execute("CREATE TABLE note (id int PRIMARY KEY, body text NOT NULL)")
        await connection.execute("INSERT INTO note VALUES (1, 'samtykke')")
        assert await connection.fetchval("SELECT body FROM note WHERE id = 1") == "samtykke"
        assert (await connection.fetchval("SELECT current_database()")).startswith("t_")
    finally:
        await connection.close()


async def test_topic_round_trip(stack: StackEndpoints, topic_names: TopicNames) -> None:
    await create_topic(stack.kafka, topic_names.changes, partitions=3)
    payload = f"hello {uuid.uuid4()}".encode()

    await produce(stack.kafka, topic_names.changes, key=b"subject-1", value=payload)

    assert await consume_values(stack.kafka, topic_names.changes, count=1) == [payload]


async def test_registry_accepts_an_avro_schema(stack: StackEndpoints, topic_names: TopicNames) -> None:
    subject = f"{topic_names.changes}-value"
    schema = {
        "type": "record",
        "name": "ConsentChanged",
        "namespace": "no.samtykke.test",
        "fields": [
            {"name": "subject_id", "type": "string"},
            {"name": "granted", "type": "boolean"},
        ],
    }
    base_url = stack.registry_url.rstrip("/") + "/"
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        registered = await client.post(
            f"subjects/{subject}/versions",
            json={"schema": json.dumps(schema)},
            headers={"Content-Type": SCHEMA_CONTENT_TYPE},
        )
        assert registered.status_code == 200, registered.text
        schema_id = registered.json()["id"]

        latest = (await client.get(f"subjects/{subject}/versions/latest")).json()
        by_id = (await client.get(f"schemas/ids/{schema_id}")).json()
        subjects = (await client.get("subjects")).json()

    assert latest["id"] == schema_id
    assert json.loads(by_id["schema"])["name"] == "ConsentChanged"
    assert subject in subjects


async def test_broker_restart_keeps_topics_and_records(local_stack: StackEndpoints, topic_names: TopicNames) -> None:
    kafka = local_stack.kafka
    await create_topic(kafka, topic_names.subjects)
    await produce(kafka, topic_names.subjects, key=b"k", value=b"before restart")

    devstack.stop_part("kafka")
    assert not next(row for row in devstack.status() if row.name == "kafka").running
    devstack.start_part("kafka")

    assert await topic_exists(kafka, topic_names.subjects)
    await produce(kafka, topic_names.subjects, key=b"k", value=b"after restart")
    assert await consume_values(kafka, topic_names.subjects, count=2) == [
        b"before restart",
        b"after restart",
    ]


async def test_registry_restart_keeps_schema_ids(local_stack: StackEndpoints, topic_names: TopicNames) -> None:
    """Records on Kafka name their schema by id: a registry restarted empty would leave every
    consumer unable to decode the log, so the local registry keeps its schemas in PostgreSQL."""
    subject = f"{topic_names.subjects}-value"
    schema = {"type": "record", "name": "Durable", "fields": [{"name": "kept", "type": "boolean"}]}
    base_url = local_stack.registry_url.rstrip("/") + "/"
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        registered = await client.post(
            f"subjects/{subject}/versions",
            json={"schema": json.dumps(schema)},
            headers={"Content-Type": SCHEMA_CONTENT_TYPE},
        )
        assert registered.status_code == 200, registered.text
        schema_id = registered.json()["id"]

    devstack.stop_part("registry")
    assert not next(row for row in devstack.status() if row.name == "registry").running
    devstack.start_part("registry")

    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        by_id = await client.get(f"schemas/ids/{schema_id}")
        subjects = (await client.get("subjects")).json()
    assert by_id.status_code == 200, by_id.text
    assert json.loads(by_id.json()["schema"])["name"] == "Durable"
    assert subject in subjects
