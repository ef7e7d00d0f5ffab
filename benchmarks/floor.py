"""The floor under any Kafka-to-PostgreSQL pipeline on this machine: a raw aiokafka producer
sending at a steady rate, a raw consumer on every partition, one asyncpg upsert per fetched
batch. No schema registry, no Avro, no HTTP, no consent rules: what Kafka and PostgreSQL
themselves cost. Latency per message: produced -> its batch committed, in milliseconds.

It connects as the services do (`client_options`: SASL_SSL on the local stack), not through the
broker's plaintext benchmark listener, so the floor pays the same TLS and login costs they pay.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time
import uuid

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from samtykke.adapters.kafka import assign_all, client_options
from samtykke.adapters.settings import Settings

PAYLOAD = 300  # bytes, about one Avro ConsentChanged


async def _consume(
    consumer: AIOKafkaConsumer, conn: asyncpg.Connection, table: str, count: int, latencies: list[float]
) -> None:
    while len(latencies) < count:
        batches = await consumer.getmany(timeout_ms=100, max_records=500)
        records = [r for rs in batches.values() for r in rs]
        if not records:
            continue
        # one row per key (the latest), as a projector folds a batch: a batch under load can hold a key
        # twice, and one upsert statement may not touch a row twice
        latest = {r.key: r for r in records}.values()
        await conn.execute(
            f"INSERT INTO {table} AS t (key, version, payload) "
            "SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[]) "
            "ON CONFLICT (key) DO UPDATE SET version = EXCLUDED.version, payload = EXCLUDED.payload "
            "WHERE EXCLUDED.version > t.version",
            [r.key.decode() for r in latest],
            [r.offset for r in latest],
            [r.value for r in latest],
        )
        now = time.time()
        latencies.extend((now - struct.unpack_from("<d", r.value)[0]) * 1000 for r in records)


async def floor(settings: Settings, rate: float, seconds: float) -> list[float]:
    """Send `rate` messages/s for `seconds`; each one's produce -> committed upsert latency (ms)."""
    tag = uuid.uuid4().hex[:8]
    topic, table = f"bench-floor-{tag}", f"bench_floor_{tag}"
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    await admin.create_topics([NewTopic(topic, settings.topic_partitions, 1)])
    conn = await asyncpg.connect(settings.database_url)
    await conn.execute(f"CREATE TABLE {table} (key text PRIMARY KEY, version bigint, payload bytea)")
    producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True)
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, fetch_max_wait_ms=100)
    count, latencies = int(rate * seconds), list[float]()
    try:
        await producer.start()
        await consumer.start()
        await assign_all(consumer, client_options(settings), [topic], "beginning", wait_seconds=30)
        reader = asyncio.create_task(_consume(consumer, conn, table, count, latencies))
        filler = os.urandom(PAYLOAD - 8)
        keys = [str(uuid.uuid4()).encode() for _ in range(max(1, count // 10))]
        pending = []
        t0 = time.perf_counter()
        for i in range(count):
            await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            value = struct.pack("<d", time.time()) + filler
            pending.append(await producer.send(topic, value, key=keys[i % len(keys)]))
        await asyncio.gather(*pending)
        await asyncio.wait_for(reader, timeout=120)
    finally:
        await producer.stop()
        await consumer.stop()
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.close()
        with contextlib.suppress(Exception):
            await admin.delete_topics([topic])
        await admin.close()
    return latencies
