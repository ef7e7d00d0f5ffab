"""`samtykke tail` against the real broker and registry: a topic of known records (two partitions, a
tombstone, an undecodable value, headers that are not text) read back as JSON lines."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from samtykke.adapters.avro import AvroEncoder, SchemaRegistry
from samtykke.adapters.kafka import client_options, create_topics, idempotent_producer
from samtykke.adapters.settings import Settings
from samtykke.tail import Start, tail

SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "TailProbe",
        "namespace": "test.samtykke",
        "fields": [
            {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "at_micros", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "note", "type": ["null", "string"]},
        ],
    }
)
NOW = datetime.now(UTC).replace(microsecond=123_000)
AN_HOUR_AGO = NOW - timedelta(hours=1)
EVENT_ID = str(uuid.uuid4())


async def produce(settings: Settings, topic: str) -> None:
    """Partition 0: two old records, then a recent one and a tombstone; partition 1: a recent record
    and a value that is not Avro."""
    kafka = client_options(settings)
    admin = AIOKafkaAdminClient(**kafka)
    await admin.start()
    try:
        await create_topics(admin, [NewTopic(topic, 2, 1)])
    finally:
        await admin.close()
    registry = SchemaRegistry.from_settings(settings)
    encoder = AvroEncoder(registry, topic, SCHEMA)
    await encoder.register()
    await registry.aclose()

    def value(at: datetime, note: str | None) -> bytes:
        return encoder.encode({"id": EVENT_ID, "at": at, "at_micros": at + timedelta(microseconds=7), "note": note})

    old, recent = int(AN_HOUR_AGO.timestamp() * 1000), int(NOW.timestamp() * 1000)
    producer = idempotent_producer(kafka)
    await producer.start()
    try:
        for partition, key, payload, stamp, headers in (
            (0, b"k-old-1", value(AN_HOUR_AGO, "first"), old, [("ce_type", b"probe.v1"), ("bin", b"\xff\xfe")]),
            (0, b"k-old-2", value(AN_HOUR_AGO, None), old, []),
            (0, b"k-new", value(NOW, "recent"), recent, []),
            (0, b"k-new", None, recent, []),
            (1, "nøgle".encode(), value(NOW, "other partition"), recent, []),
            (1, b"\xff\x00raw", b"not avro at all", recent, []),
        ):
            await producer.send_and_wait(
                topic, payload, key=key, partition=partition, timestamp_ms=stamp, headers=headers
            )
    finally:
        await producer.stop()


@pytest.fixture
async def probe_topic(stack_settings: Settings) -> str:
    topic = f"t{uuid.uuid4().hex}.tail"
    await produce(stack_settings, topic)
    return topic


async def lines(settings: Settings, topic: str, start: Start, **options: Any) -> list[dict[str, Any]]:
    out = io.StringIO()
    printed = await tail(settings, topic, start, out, **options)
    found = [json.loads(line) for line in out.getvalue().splitlines()]
    assert printed == len(found)
    return found


def test_the_command_prints_every_record_decoded(stack_settings: Settings, probe_topic: str) -> None:
    env = os.environ | {
        "SAMTYKKE_KAFKA_BOOTSTRAP": stack_settings.kafka_bootstrap,
        "SAMTYKKE_REGISTRY_URL": stack_settings.registry_url,
    }
    command = [str(Path(sys.executable).parent / "samtykke"), "tail", probe_topic, "--from-beginning"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    found = {(line["partition"], line["offset"]): line for line in map(json.loads, done.stdout.splitlines())}
    assert sorted(found) == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1)]

    first = found[0, 0]
    assert (first["topic"], first["key"], first["key_format"]) == (probe_topic, "k-old-1", "utf-8")
    assert first["timestamp"] == AN_HOUR_AGO.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert first["timestamp_type"] == "create"
    assert first["headers"] == {"ce_type": "probe.v1", "bin": {"base64": base64.b64encode(b"\xff\xfe").decode()}}
    assert first["value"] == {
        "id": EVENT_ID,
        "at": AN_HOUR_AGO.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "at_micros": (AN_HOUR_AGO + timedelta(microseconds=7)).isoformat().replace("+00:00", "Z"),
        "note": "first",
    }
    assert isinstance(first["schema_id"], int) and "error" not in first
    assert found[0, 1]["value"]["note"] is None and found[0, 1]["headers"] == {}

    tombstone = found[0, 3]
    assert tombstone["key"] == "k-new" and tombstone["value"] is None and "error" not in tombstone
    assert found[1, 0]["key"] == "nøgle" and found[1, 0]["value"]["note"] == "other partition"

    broken = found[1, 1]
    assert (broken["key"], broken["key_format"]) == ((b"\xff\x00raw").hex(), "hex")
    assert broken["value"] is None and "UndecodableMessage" in broken["error"]
    assert base64.b64decode(broken["value_base64"]) == b"not avro at all"


async def test_since_max_partition_and_offsets_choose_the_records(stack_settings: Settings, probe_topic: str) -> None:
    recent = await lines(stack_settings, probe_topic, Start("since", since=NOW - timedelta(minutes=10)))
    assert sorted((line["partition"], line["offset"]) for line in recent) == [(0, 2), (0, 3), (1, 0), (1, 1)]
    from_iso = await lines(stack_settings, probe_topic, Start("since", since=AN_HOUR_AGO), partition=0)
    assert [line["offset"] for line in from_iso] == [0, 1, 2, 3]

    assert len(await lines(stack_settings, probe_topic, Start("beginning"), limit=3)) == 3
    last = await lines(stack_settings, probe_topic, Start("offset", offset=-1), partition=0)
    assert [(line["offset"], line["value"]) for line in last] == [(3, None)]
    from_one = await lines(stack_settings, probe_topic, Start("offset", offset=1))
    assert sorted((line["partition"], line["offset"]) for line in from_one) == [(0, 1), (0, 2), (0, 3), (1, 1)]
    assert await lines(stack_settings, probe_topic, Start()) == []  # from the end, not following: nothing yet


async def test_follow_prints_what_arrives_until_the_maximum(stack_settings: Settings, probe_topic: str) -> None:
    out = io.StringIO()
    reading = asyncio.create_task(tail(stack_settings, probe_topic, Start(), out, follow=True, limit=1))
    await asyncio.sleep(2)  # positioned at the end
    producer = idempotent_producer(client_options(stack_settings))
    await producer.start()
    try:
        await producer.send_and_wait(probe_topic, b"late", key=b"k-late", partition=1)
    finally:
        await producer.stop()
    assert await asyncio.wait_for(reading, timeout=30) == 1
    [line] = [json.loads(text) for text in out.getvalue().splitlines()]
    assert (line["key"], line["offset"], line["partition"]) == ("k-late", 2, 1)
