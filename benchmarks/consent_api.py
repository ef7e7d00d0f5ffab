"""Consent API write throughput, beside a bare asyncpg INSERT loop on the same database.

Starts the consent service as its own process against a fresh database on the running
stack, drives it with concurrent HTTP clients for a fixed time, then runs the baseline:
the same number of concurrent connections doing one plain INSERT per decision (and one
executemany of 50 rows per transaction for the batch case). Prints decisions/s, request
latency percentiles and the ratio to the baseline.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import asyncpg

from benchmarks.percentiles import percentile
from samtykke.adapters.settings import Settings
from samtykke.devstack.process import ServiceProcess

HEADERS = {"Authorization": "Bearer dev-admin"}
CHANNELS = ["sms", "email", "phone", "post", "push"]


@dataclass
class Result:
    name: str
    decisions: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.decisions / self.seconds

    def percentile_ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


async def _drive(workers: int, seconds: float, step: Callable[[int], Awaitable[int]], name: str) -> Result:
    latencies: list[float] = []
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            # awaited first: `done += await step(n)` reads `done` before the await and so loses the
            # increments of every worker that finished meanwhile
            decisions = await step(n)
            done += decisions
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(workers)))
    return Result(name, done, time.perf_counter() - started, latencies)


def consent_process(database_url: str, port: int) -> ServiceProcess:
    """The consent service on its own database and topics; alive (/healthz) is enough to drive it."""
    env = dict(
        os.environ,
        SAMTYKKE_DATABASE_URL=database_url,
        SAMTYKKE_CONSENT_PORT=str(port),
        SAMTYKKE_TOPIC_CHANGES=f"bench-{port}.consent.changes",
        SAMTYKKE_TOPIC_SUBJECTS=f"bench-{port}.consent.subjects",
    )
    url = f"http://127.0.0.1:{port}"
    return ServiceProcess("consent", ("consent", "serve"), url, env, ready_timeout=30, ready_path="/healthz")


async def measure_api(url: str, subjects: int, workers: int, seconds: float, batch: int) -> Result:
    # aiohttp, not httpx: on two cores the load generator shares the machine with the service, and
    # httpx spent ~7 CPU-ms per request (70 % of a core at 100 requests/s) where aiohttp spends under 1
    connector = aiohttp.TCPConnector(limit=workers)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(url, headers=HEADERS, connector=connector, timeout=timeout) as client:
        ids = []
        for _ in range(subjects):
            async with client.post("/v1/subjects", json={"kind": "consumer", "country": "DK"}) as created:
                ids.append((await created.json())["subject_id"])
        rng = random.Random(7)

        async def step(_: int) -> int:
            decisions = [
                {
                    "purpose": "direct_marketing",
                    "channel": rng.choice(CHANNELS),
                    "action": rng.choice(["grant", "withdraw"]),
                }
                for _ in range(batch)
            ]
            body = {"decisions": decisions, "source": "app", "actor": {"kind": "subject"}, "notice_version": "b1"}
            async with client.post(f"/v1/subjects/{rng.choice(ids)}/consents", json=body) as response:
                text = await response.text()
                if response.status != 201:
                    raise RuntimeError(f"{response.status}: {text[:200]}")
            return batch

        await step(0)  # warm-up
        return await _drive(workers, seconds, step, f"consent API, {batch} per request")


async def measure_baseline(database_url: str, workers: int, seconds: float, batch: int) -> Result:
    pool = await asyncpg.create_pool(database_url, min_size=workers, max_size=workers)
    assert pool is not None
    await pool.execute(
        "CREATE TABLE IF NOT EXISTS bench_baseline (id bigserial PRIMARY KEY, event_id uuid, subject_id uuid, "
        "purpose text, channel text, status text, version bigint, occurred_at timestamptz, source text)"
    )
    sql = (
        "INSERT INTO bench_baseline (event_id, subject_id, purpose, channel, status, version, occurred_at, source) "
        "VALUES ($1, $2, 'direct_marketing', $3, 'granted', 1, now(), 'app')"
    )

    async def step(_: int) -> int:
        rows = [(uuid.uuid4(), uuid.uuid4(), random.choice(CHANNELS)) for _ in range(batch)]
        async with pool.acquire() as conn:
            if batch == 1:
                await conn.execute(sql, *rows[0])
            else:
                async with conn.transaction():
                    await conn.executemany(sql, rows)
        return batch

    try:
        return await _drive(workers, seconds, step, f"bare asyncpg INSERT, {batch} per transaction")
    finally:
        await pool.close()


def report(pairs: list[tuple[Result, Result]]) -> str:
    lines = [f"{'measure':42} {'decisions/s':>12} {'p50 ms':>8} {'p99 ms':>8}   ratio to baseline"]
    for ours, base in pairs:
        for r in (ours, base):
            ratio = f"{ours.rate / base.rate:.2f}x" if r is ours else "(baseline)"
            p50, p99 = r.percentile_ms(0.5), r.percentile_ms(0.99)
            lines.append(f"{r.name:42} {r.rate:12.0f} {p50:8.1f} {p99:8.1f}   {ratio}")
    return "\n".join(lines)


async def run(settings: Settings, seconds: float = 10.0, workers: int = 16, subjects: int = 200) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(settings.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    database_url = settings.database_url.rsplit("/", 1)[0] + f"/{name}"
    pairs = []
    try:
        async with consent_process(database_url, settings.consent_port + 100) as service:
            for batch in (1, 50):
                ours = await measure_api(service.url, subjects, workers, seconds, batch)
                base = await measure_baseline(database_url, workers, seconds, batch)
                pairs.append((ours, base))
                print(f"measured {ours.name}: {ours.rate:.0f}/s; baseline {base.rate:.0f}/s", flush=True)
    finally:
        admin = await asyncpg.connect(settings.database_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return report(pairs) + f"\n(concurrent clients={workers}, {seconds:.0f} s per measure, {os.cpu_count()} cores)"


def main(settings: Settings, seconds: float, workers: int) -> None:
    print(asyncio.run(run(settings, seconds, workers)))


__all__ = ["main", "run"]
