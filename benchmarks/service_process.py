"""Measuring tools for the suppression benchmark: the service as a child process, an open-loop
driver, and single checks over the benchmarks' minimal keep-alive HTTP client (so the client,
not the server, is not the bottleneck)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType

import httpx

from benchmarks.http import KeepAliveClient
from samtykke.adapters.settings import Settings


class ServiceProcess:
    """`samtykke suppression serve` on given topics; ready when /ready says so."""

    def __init__(self, settings: Settings, topics: tuple[str, str], port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self._env = dict(
            os.environ,
            SAMTYKKE_TOPIC_CHANGES=topics[0],
            SAMTYKKE_TOPIC_SUBJECTS=topics[1],
            SAMTYKKE_SUPPRESSION_PORT=str(port),
            SAMTYKKE_SUPPRESSION_MAX_LAG_SECONDS="30",
            SAMTYKKE_SUPPRESSION_RATE_LIMIT_PER_MINUTE="100000000",
            SAMTYKKE_SUPPRESSION_DLQ_TOPIC=f"{topics[0]}.dlq",
        )
        self._process: asyncio.subprocess.Process | None = None
        self.ready_after = 0.0

    async def __aenter__(self) -> ServiceProcess:
        started = time.perf_counter()
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "samtykke.cli",
            "suppression",
            "serve",
            env=self._env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        async with httpx.AsyncClient(base_url=self.url) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/ready")).status_code == 200:
                        break
                if self._process.returncode is not None or time.perf_counter() - started > 1800:
                    raise RuntimeError("suppression service did not become ready")
                await asyncio.sleep(0.2)
        self.ready_after = time.perf_counter() - started
        return self

    def rss(self) -> int:
        assert self._process is not None
        for line in Path(f"/proc/{self._process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    async def __aexit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._process is not None:
            self._process.terminate()
            await self._process.wait()


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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0
