"""`samtykke projections bench`: what each projector sustains, beside a raw consumer in the same run.

1. Backlog: 100,000 ConsentChanged (+ one SubjectChanged per 10) produced as Avro straight to a
   fresh topic pair. A raw aiokafka consumer reads it all (no decoding: the floor of any Kafka
   reader here), then each projector, as its own process, applies it from offset 0; its rate is
   taken from its committed offsets in PostgreSQL (start-up excluded).
2. Latency: all three projectors run while changes arrive at a steady rate (default 200/s);
   p50/p99 of recorded_at -> row committed from each projector's propagation histogram
   (interpolated within buckets, as Prometheus' histogram_quantile does), beside the raw
   consumer's recorded_at -> received, measured exactly.
Everything runs in a fresh database and on fresh topics, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.percentiles import percentile
from benchmarks.synthetic import SyntheticHistory, SyntheticProducer
from samtykke.adapters.dead_letters import dead_letter_topic
from samtykke.adapters.kafka import assign_all, client_options, ensure_topics
from samtykke.adapters.settings import Settings
from samtykke.devstack.process import ServiceProcess, settings_environment
from samtykke.projections.domains import DOMAINS, Domain
from samtykke.projections.provision import provision

# the settings a projector process needs to land on the benchmark's database, topics and ports
PROJECTOR_SETTINGS = (
    "kafka_bootstrap",
    "registry_url",
    "database_url",
    "topic_changes",
    "topic_subjects",
    "projection_web_port_base",
    "projection_group_prefix",
    "projection_batch_size",
)


def projector(domain: Domain, settings: Settings) -> ServiceProcess:
    """A projector process of `domain`; as `async with`, ready (its partitions assigned) inside."""
    url = f"http://127.0.0.1:{domain.web_port(settings)}"
    env = settings_environment(settings, PROJECTOR_SETTINGS)
    return ServiceProcess(domain.name, ("projections", "run", domain.name), url, env)


async def applied_rate(domain: Domain, settings: Settings, total: int) -> float:
    """Events/s from the first committed batch to the last, read from the offsets table."""
    conn = await asyncpg.connect(settings.database_url)
    first: tuple[float, int] | None = None
    # watched from the spawn, not from /ready: a small backlog may be applied before /ready answers
    process = projector(domain, settings).spawn()
    try:
        while True:
            applied = int(
                await conn.fetchval(f"SELECT coalesce(sum(last_offset + 1), 0) FROM {domain.name}.consumer_offsets")
            )
            now = time.perf_counter()
            if first is None and applied > 0:
                first = (now, applied)
            if applied >= total and first is not None:
                return (total - first[1]) / max(now - first[0], 1e-9)
            if not process.running():
                raise RuntimeError(f"{domain.name} projector exited with {process.returncode}")
            await asyncio.sleep(0.05)
    finally:
        await process.stop()
        await conn.close()


@contextlib.asynccontextmanager
async def raw_consumer(settings: Settings, topics: list[str], from_end: bool) -> AsyncIterator[AIOKafkaConsumer]:
    """The baseline: a plain aiokafka consumer on every partition, no group, no decoding."""
    consumer = AIOKafkaConsumer(
        **client_options(settings), enable_auto_commit=False, max_poll_records=5000, fetch_max_wait_ms=5
    )
    await consumer.start()
    try:
        await assign_all(consumer, client_options(settings), topics, "end" if from_end else "beginning")
        yield consumer
    finally:
        await consumer.stop()


async def end_offsets(consumer: AIOKafkaConsumer) -> dict[tuple[str, int], int]:
    """The end offset of every partition assigned to `consumer`, keyed (topic, partition)."""
    ends = await consumer.end_offsets(list(consumer.assignment()))
    return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}


async def raw_rate(settings: Settings, total: int) -> float:
    async with raw_consumer(settings, [settings.topic_changes, settings.topic_subjects], from_end=False) as consumer:
        started, seen = time.perf_counter(), 0
        while seen < total:
            seen += sum(len(records) for records in (await consumer.getmany(timeout_ms=200)).values())
        return total / (time.perf_counter() - started)


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """histogram_quantile: linear interpolation inside the bucket holding the q-th observation."""
    total = buckets[-1][1]
    rank, lower, below = q * total, 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            return (
                lower + (upper - lower) * (rank - below) / max(count - below, 1e-9) if upper != float("inf") else lower
            )
        lower, below = upper, count
    return lower


async def histogram_buckets(url: str, name: str) -> list[tuple[float, float]]:
    """A histogram's cumulative buckets (upper bound, count) from a service's /metrics."""
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{url}/metrics")).text
    return [
        (float(s.labels["le"]), s.value)
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == f"{name}_bucket"
    ]


async def projector_latency(url: str) -> tuple[float, float, int]:
    buckets = await histogram_buckets(url, "samtykke_projection_propagation_seconds")
    return quantile(buckets, 0.5) * 1000, quantile(buckets, 0.99) * 1000, int(buckets[-1][1])


async def steady(settings: Settings, history: SyntheticHistory, rate: float, seconds: float) -> list[float]:
    """Produce `rate` changes/s for `seconds`; the raw consumer's latencies in ms (produce -> receive)."""
    count, latencies = int(rate * seconds), list[float]()
    async with raw_consumer(settings, [settings.topic_changes], from_end=True) as consumer:

        async def receive() -> None:
            while len(latencies) < count:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    now = time.time() * 1000  # the record timestamp is the producer's create time
                    latencies.extend(now - r.timestamp for r in records)

        reader = asyncio.create_task(receive())
        producer = SyntheticProducer(settings, linger_ms=0)
        await producer.start()
        started = time.perf_counter()
        for i in range(count):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            await producer.send(history.change())
        await producer.stop()
        await asyncio.wait_for(reader, timeout=60)
    return latencies


@contextlib.asynccontextmanager
async def bench_platform(settings: Settings) -> AsyncIterator[Settings]:
    """A fresh database (provisioned) and topic pair, dropped afterwards."""
    tag = uuid.uuid4().hex[:8]
    name = f"bench_projections_{tag}"
    admin = await asyncpg.connect(settings.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    bench = settings.model_copy(
        update={
            "database_url": settings.database_url.rsplit("/", 1)[0] + f"/{name}",
            "topic_changes": f"bench-{tag}.consent.changes",
            "topic_subjects": f"bench-{tag}.consent.subjects",
            "projection_group_prefix": f"bench-{tag}",
            "projection_web_port_base": settings.projection_web_port_base + 10,
        }
    )
    extra = [dead_letter_topic(d.group(bench)) for d in DOMAINS.values()]
    await ensure_topics(client_options(bench), bench.topic_changes, bench.topic_subjects, bench.topic_partitions, extra)
    await provision(bench)
    try:
        yield bench
    finally:
        kafka = AIOKafkaAdminClient(**client_options(settings))
        await kafka.start()
        with contextlib.suppress(Exception):  # best effort: a leftover topic is only disk space
            await kafka.delete_topics([bench.topic_changes, bench.topic_subjects, *extra])
        await kafka.close()
        admin = await asyncpg.connect(settings.database_url)
        for attempt in range(60):  # backends of the processes just stopped may still be exiting
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except (asyncpg.InsufficientPrivilegeError, asyncpg.ObjectInUseError):
                if attempt == 59:
                    raise
                await asyncio.sleep(0.5)
        await admin.close()


async def run(settings: Settings, events: int, rate: float, seconds: float) -> str:
    async with bench_platform(settings) as bench:
        history = SyntheticHistory()
        producer = SyntheticProducer(bench, linger_ms=20)
        await producer.start()
        for _ in range(events // 10):
            await producer.send(history.subject())
        for _ in range(events):
            await producer.send(history.change())
        await producer.stop()
        total = events + events // 10
        print(f"produced {events:,} ConsentChanged + {events // 10:,} SubjectChanged", flush=True)
        raw = await raw_rate(bench, total)
        print(f"raw aiokafka consumer: {raw:,.0f} events/s", flush=True)
        rates = {}
        for domain in DOMAINS.values():
            rates[domain.name] = await applied_rate(domain, bench, total)
            print(f"{domain.name} projector: {rates[domain.name]:,.0f} events/s", flush=True)
        async with contextlib.AsyncExitStack() as stack:
            urls = {d.name: (await stack.enter_async_context(projector(d, bench))).url for d in DOMAINS.values()}
            await asyncio.sleep(5)  # joined and caught up (nothing new since the backlog)
            raw_latencies = await steady(bench, history, rate, seconds)
            await asyncio.sleep(2)  # the last batches commit
            latencies = {name: await projector_latency(url) for name, url in urls.items()}
    return report(events, total, raw, rates, rate, seconds, raw_latencies, latencies, settings)


def report(
    events: int,
    total: int,
    raw: float,
    rates: dict[str, float],
    rate: float,
    seconds: float,
    raw_latencies: list[float],
    latencies: dict[str, tuple[float, float, int]],
    settings: Settings,
) -> str:
    lines = [
        f"backlog: {events:,} ConsentChanged + {events // 10:,} SubjectChanged = {total:,} events, "
        f"{settings.topic_partitions} partitions per topic",
        f"{'measure':34} {'events/s':>10}   ratio to raw consumer",
        f"{'raw aiokafka consumer (no decode)':34} {raw:10,.0f}   (baseline)",
    ]
    lines += [f"{name + ' projector':34} {r:10,.0f}   {r / raw:.3f}x" for name, r in rates.items()]
    raw_p50, raw_p99 = percentile(raw_latencies, 0.5), percentile(raw_latencies, 0.99)
    lines += [
        "",
        f"steady {rate:.0f} changes/s for {seconds:.0f} s: propagation recorded_at -> committed row",
        f"{'measure':34} {'p50 ms':>8} {'p99 ms':>8} {'events':>7}   p50 ratio to raw consumer",
        f"{'raw aiokafka consumer (receive)':34} {raw_p50:8.1f} {raw_p99:8.1f} {len(raw_latencies):7}   (baseline)",
    ]
    lines += [
        f"{name + ' projector':34} {p50:8.1f} {p99:8.1f} {n:7}   {p50 / max(raw_p50, 1e-9):.1f}x"
        for name, (p50, p99, n) in latencies.items()
    ]
    lines.append(
        f"(batch size {settings.projection_batch_size}, "
        f"batch window {settings.projection_batch_seconds * 1000:.0f} ms, "
        f"{os.cpu_count()} cores; projector percentiles interpolated within histogram buckets)"
    )
    return "\n".join(lines)


def main(settings: Settings, events: int, rate: float, seconds: float) -> None:
    print(asyncio.run(run(settings, events, rate, seconds)))
