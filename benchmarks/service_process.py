"""Measuring tools for the suppression benchmark: the service as a child process, an open-loop
driver, and single checks over the benchmarks' minimal keep-alive HTTP client (so the client,
not the server, is not the bottleneck)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

from benchmarks.http import KeepAliveClient
from benchmarks.procstat import usage
from samtykke.devstack.process import ServiceProcess

# a replay of millions of events before /ready is what the benchmark measures: wait for it
REPLAY_TIMEOUT_SECONDS = 1800.0


def suppression_service(topics: tuple[str, str], port: int, watermarks: str) -> ServiceProcess:
    """`samtykke suppression serve` on given topics and their watermarks (`benchmarks.watermarks`),
    ready when /ready says so (`ready_after`)."""
    env = dict(
        os.environ,
        SAMTYKKE_TOPIC_CHANGES=topics[0],
        SAMTYKKE_TOPIC_SUBJECTS=topics[1],
        SAMTYKKE_TOPIC_WATERMARKS=watermarks,
        SAMTYKKE_SUPPRESSION_PORT=str(port),
        SAMTYKKE_SUPPRESSION_MAX_LAG_SECONDS="30",
        SAMTYKKE_SUPPRESSION_RATE_LIMIT_PER_MINUTE="100000000",
        SAMTYKKE_SUPPRESSION_DLQ_TOPIC=f"{topics[0]}.dlq",
    )
    url = f"http://127.0.0.1:{port}"
    return ServiceProcess("suppression", ("suppression", "serve"), url, env, None, REPLAY_TIMEOUT_SECONDS)


def resident_bytes(service: ServiceProcess) -> int:
    """The service process's resident memory (without children: it has none)."""
    return usage(service.pid, {}).rss_bytes


async def drive_open_loop(step: Callable[[int], Awaitable[None]], rate: int, seconds: float) -> list[float]:
    """Start `step(i)` at t0 + i/rate regardless of earlier calls; latency (ms) counts from that time."""
    latencies: list[float] = []
    total = int(rate * seconds)
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int, due: float) -> None:
        await step(i)
        latencies.append((time.perf_counter() - due) * 1000)

    t0 = time.perf_counter() + 0.05
    launched = 0
    while launched < total:
        due_now = min(total, int((time.perf_counter() - t0) * rate) + 1)
        while launched < due_now:
            task = asyncio.create_task(one(launched, t0 + launched / rate))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            launched += 1
        await asyncio.sleep(0.0005)
    await asyncio.gather(*tasks)
    return latencies


async def raw_http_check(host: str, port: int, ids: list[str], connections: int) -> Callable[[int], Awaitable[None]]:
    """A step that sends one `POST /v1/check` over a pool of keep-alive connections."""
    client = KeepAliveClient(f"http://{host}:{port}", {"Authorization": "Bearer dev-marketing"}, connections)

    async def step(i: int) -> None:
        await client.post(
            "/v1/check", {"subject_id": ids[i * 7919 % len(ids)], "purpose": "direct_marketing", "channel": "sms"}
        )

    return step
