"""Suppression benchmark: bulk and single checks, each beside a PostgreSQL `= ANY($1)` baseline.

Publishes N subjects (one `SubjectChanged` with a phone hash, one `direct_marketing`/sms
`ConsentChanged`: 90 % granted, 10 % withdrawn) to fresh bench topics, starts the suppression
service as its own process and times its replay, then measures:
- bulk: all N subject ids through `POST /v1/check/stream` (CSV in, blocked entries out) over
  HTTP, and the same list through the in-process index (`SuppressionGate.decide_many`, parse
  included) built from the same events; baseline: the same ids looked up in PostgreSQL with
  `WHERE subject_id = ANY($1)` in chunks of 10,000;
- single: checks at a steady rate (open loop: latency counts from the scheduled send time) over
  keep-alive HTTP connections; baseline: one `= ANY($1)` query per check at the same rate;
- resident memory per indexed subject: RSS of the loaded service minus RSS of one on empty topics.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter as Tally
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg
import httpx
from prometheus_client import CollectorRegistry

from benchmarks.percentiles import percentile
from benchmarks.service_process import drive_open_loop, raw_http_check, resident_bytes, suppression_service
from benchmarks.watermarks import bench_watermarks
from samtykke.adapters.avro import AvroEncoder, SchemaRegistry, load_schema
from samtykke.adapters.kafka import client_options, ensure_topics, idempotent_producer
from samtykke.adapters.settings import Settings
from samtykke.domain.catalog import load_catalog
from samtykke.domain.events import ConsentChanged, SubjectChanged
from samtykke.domain.registers import RegisterBook
from samtykke.domain.suppression import Reason, SuppressionRules
from samtykke.suppression.gate import SuppressionGate
from samtykke.suppression.index import SuppressionIndex
from samtykke.suppression.metrics import SuppressionMetrics
from samtykke.suppression.targets import TargetParser

CHUNK = 10_000


def events(n: int, hash_key: bytes) -> tuple[list[str], list[SubjectChanged], list[ConsentChanged]]:
    parser, now = TargetParser(hash_key), datetime.now(UTC)
    ids = [str(uuid.uuid4()) for _ in range(n)]
    subjects, changes = [], []
    for i, sid in enumerate(ids):
        phone = parser.keyed("phone", f"+452{i:07d}")
        subjects.append(
            SubjectChanged(str(uuid.uuid4()), sid, "consumer", "DK", None, phone, None, None, False, 1, now)
        )
        status = "withdrawn" if i % 10 == 0 else "granted"
        changes.append(
            ConsentChanged(
                str(uuid.uuid4()),
                sid,
                "consumer",
                None,
                "DK",
                "direct_marketing",
                "sms",
                status,
                None,
                1,
                now,
                now,
                now + timedelta(days=300) if status == "granted" else None,
                "import",
                "system",
                "b1",
                None,
                None,
            )
        )
    return ids, subjects, changes


async def publish(
    settings: Settings, topics: tuple[str, str], subjects: list[SubjectChanged], changes: list[ConsentChanged]
) -> float:
    await ensure_topics(client_options(settings), topics[0], topics[1], 6)
    registry = SchemaRegistry.from_settings(settings)
    producer = idempotent_producer(client_options(settings), linger_ms=20, max_batch_size=1024 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        for topic, name, items in ((topics[1], "SubjectChanged", subjects), (topics[0], "ConsentChanged", changes)):
            encoder = AvroEncoder(registry, topic, load_schema(settings.schema_dir, name))
            await encoder.register()
            pending = []
            for item in items:
                pending.append(
                    await producer.send(topic, encoder.encode(item.as_record()), key=item.subject_id.encode())
                )
                if len(pending) >= 20_000:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)
    finally:
        await producer.stop()
        await registry.aclose()
    return time.perf_counter() - started


async def baseline_table(settings: Settings, ids: list[str]) -> str:
    name = f"bench_suppression_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(settings.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = urlsplit(settings.database_url)._replace(path=f"/{name}").geturl()
    conn = await asyncpg.connect(url)
    await conn.execute(
        "CREATE TABLE consent_state (subject_id text PRIMARY KEY, purpose text, channel text, "
        "status text, valid_until timestamptz)"
    )
    until = datetime.now(UTC) + timedelta(days=300)
    rows = [
        (sid, "direct_marketing", "sms", "withdrawn" if i % 10 == 0 else "granted", None if i % 10 == 0 else until)
        for i, sid in enumerate(ids)
    ]
    await conn.copy_records_to_table("consent_state", records=rows)
    await conn.execute("ANALYZE consent_state")
    await conn.close()
    return str(url)


BASELINE_BLOCKED = (
    "SELECT subject_id FROM consent_state WHERE subject_id = ANY($1) AND purpose = 'direct_marketing' "
    "AND channel = 'sms' AND NOT (status = 'granted' AND (valid_until IS NULL OR valid_until > now()))"
)


async def bulk_baseline(url: str, ids: list[str]) -> tuple[float, int]:
    conn = await asyncpg.connect(url)
    started, blocked = time.perf_counter(), 0
    for i in range(0, len(ids), CHUNK):
        blocked += len(await conn.fetch(BASELINE_BLOCKED, ids[i : i + CHUNK]))
    elapsed = time.perf_counter() - started
    await conn.close()
    return elapsed, blocked


async def bulk_http(url: str, ids: list[str]) -> tuple[float, int]:
    body = ("subject_id\n" + "\n".join(ids) + "\n").encode()
    async with httpx.AsyncClient(
        base_url=url, timeout=600, headers={"Authorization": "Bearer dev-marketing"}
    ) as client:
        started = time.perf_counter()
        response = await client.post(
            "/v1/check/stream",
            params={"purpose": "direct_marketing", "channel": "sms"},
            content=body,
            headers={"Content-Type": "text/csv"},
        )
        elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, response.text.count("\n")


def bulk_in_process(
    ids: list[str], subjects: list[SubjectChanged], changes: list[ConsentChanged], hash_key: bytes
) -> tuple[float, int]:
    index = SuppressionIndex(SuppressionRules(load_catalog()), RegisterBook({}))
    now = time.time()
    for subject, change in zip(subjects, changes, strict=False):
        index.apply_subject(subject, now)
        index.apply_consent(change, now)
    gate = SuppressionGate(index, lambda: 0.0, lambda: True, 5.0, False, SuppressionMetrics(CollectorRegistry()))
    parser, purpose = TargetParser(hash_key), gate.purpose("direct_marketing")
    assert purpose is not None
    plan = gate.plan(purpose, "sms")
    started = time.perf_counter()
    snap, tally = gate.snapshot(None), Tally[tuple[Reason, ...]]()
    targets = (parser.parse("subject_id", sid) for sid in ids)
    blocked = sum(1 for verdict, _ in gate.decide_many(targets, plan, snap, tally) if not verdict.allowed)
    return time.perf_counter() - started, blocked


async def single_checks(
    url: str, pg_url: str, ids: list[str], rate: int, seconds: float
) -> list[tuple[str, list[float]]]:
    host, port = urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 80
    http = await raw_http_check(host, port, ids, connections=16)
    pool = await asyncpg.create_pool(pg_url, min_size=16, max_size=16)
    assert pool is not None
    sample = iter(ids[i * 7919 % len(ids)] for i in range(10**9))

    async def pg(_: int) -> None:
        await pool.fetch(BASELINE_BLOCKED, [next(sample)])

    try:
        results = [
            ("HTTP POST /v1/check", await drive_open_loop(http, rate, seconds)),
            ("PostgreSQL = ANY($1), 1 id", await drive_open_loop(pg, rate, seconds)),
        ]
    finally:
        await pool.close()
    return results


async def run(settings: Settings, n: int, rate: int, seconds: float) -> str:
    key = settings.identifier_hash_key.encode()
    ids, subjects, changes = events(n, key)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    topics = (f"{prefix}.consent.changes", f"{prefix}.consent.subjects")
    publish_s = await publish(settings, topics, subjects, changes)
    pg_url = await baseline_table(settings, ids)
    lines = [f"suppression bench: {n:,} subjects (10 % blocked), published {2 * n:,} events in {publish_s:.1f}s"]
    empty = (f"{prefix}-empty.consent.changes", f"{prefix}-empty.consent.subjects")
    await ensure_topics(client_options(settings), empty[0], empty[1], 6)
    async with (
        bench_watermarks(settings, empty) as watermarks,
        suppression_service(empty, settings.suppression_port + 51, watermarks) as idle,
    ):
        idle_rss = resident_bytes(idle)
    async with (
        bench_watermarks(settings, topics) as watermarks,
        suppression_service(topics, settings.suppression_port + 50, watermarks) as service,
    ):
        lines.append(
            f"replay at start: {2 * n:,} events in {service.ready_after:.1f}s "
            f"({2 * n / service.ready_after:,.0f} events/s until /ready)"
        )
        loaded_rss = resident_bytes(service)
        per_subject = (loaded_rss - idle_rss) / n
        lines.append(
            f"resident memory: {loaded_rss / 2**20:,.0f} MiB loaded vs {idle_rss / 2**20:,.0f} MiB empty "
            f"= {per_subject:,.0f} bytes per indexed subject"
        )
        http_s, http_blocked = await bulk_http(service.url, ids)
        single = await single_checks(service.url, pg_url, ids, rate, seconds)
    local_s, local_blocked = bulk_in_process(ids, subjects, changes, key)
    base_s, base_blocked = await bulk_baseline(pg_url, ids)
    assert http_blocked == local_blocked == base_blocked == n // 10 + (n % 10 > 0), (
        http_blocked,
        local_blocked,
        base_blocked,
    )
    lines.append(f"\nbulk check of {n:,} subject ids ({base_blocked:,} blocked)   ids/s    ratio to baseline")
    for name, s in (
        ("HTTP /v1/check/stream (CSV in, blocked out)", http_s),
        ("in-process index (parse + decide)", local_s),
        ("PostgreSQL = ANY($1), 10,000 per query", base_s),
    ):
        lines.append(f"  {name:46} {n / s:>10,.0f}   {base_s / s:.2f}x" + ("  (baseline)" if s is base_s else ""))
    lines.append(f"\nsingle checks at {rate:,}/s for {seconds:.0f}s (open loop)   sent   p50 ms  p99 ms  max ms")
    for name, latencies in single:
        lines.append(
            f"  {name:44} {len(latencies):>7,} {percentile(latencies, 0.5):7.2f} "
            f"{percentile(latencies, 0.99):7.2f} {max(latencies):7.2f}"
        )
    await cleanup(settings, pg_url, [*topics, *empty])
    return "\n".join(lines)


async def cleanup(settings: Settings, pg_url: str, topics: list[str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        await admin.delete_topics(topics)
    finally:
        await admin.close()
    conn = await asyncpg.connect(settings.database_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{urlsplit(pg_url).path.lstrip("/")}" WITH (FORCE)')
    await conn.close()


def main(settings: Settings, subjects: int, rate: int, seconds: float) -> str:
    report: str = asyncio.run(run(settings, subjects, rate, seconds))
    return report
