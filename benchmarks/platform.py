"""The whole platform as child processes on a fresh database and fresh topics, for benchmarks.

`bench_platform` (from the projections benchmark) creates the database, the topic pair and the
projector schemas and roles; this starts the consent service, the three projectors and the
suppression service on them, each as its own `samtykke` process as in production, on ports
beside the developer's own platform so both can run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

from benchmarks.projections import bench_platform, child_env
from samtykke.adapters.settings import Settings
from samtykke.projections.domains import DOMAINS

# the settings a child process needs to land on the benchmark's database, topics and ports
_CARRIED = (
    "kafka_bootstrap",
    "registry_url",
    "database_url",
    "topic_changes",
    "topic_subjects",
    "topic_partitions",
    "projection_web_port_base",
    "projection_group_prefix",
    "consent_port",
    "suppression_port",
    "suppression_dlq_topic",
    "http_host",
)


@dataclass
class RunningPlatform:
    settings: Settings
    consent_url: str
    suppression_url: str
    pids: dict[str, int] = field(default_factory=dict)


async def _wait_ready(name: str, process: asyncio.subprocess.Process, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/ready", timeout=2)).status_code == 200:
                    return
            if process.returncode is not None:
                raise RuntimeError(f"{name} exited with {process.returncode} during start-up")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready after {timeout:.0f}s")
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def running_platform(settings: Settings, log_dir: str) -> AsyncIterator[RunningPlatform]:
    """Consent, projectors and suppression on a fresh database and topic pair; all stopped after."""
    base = settings.model_copy(
        update={
            "consent_port": settings.consent_port + 10,
            "suppression_port": settings.suppression_port + 10,
        }
    )
    async with bench_platform(base) as bench:
        bench = bench.model_copy(update={"suppression_dlq_topic": f"{bench.topic_changes}.suppression.dlq"})
        env = child_env(bench, _CARRIED) | {
            "SAMTYKKE_SUPPRESSION_MAX_LAG_SECONDS": "30",
            "SAMTYKKE_SUPPRESSION_RATE_LIMIT_PER_MINUTE": "100000000",
        }
        host = "http://127.0.0.1"
        services = {
            "consent": (("consent", "serve"), f"{host}:{bench.consent_port}"),
            **{d.name: (("projections", "run", d.name), f"{host}:{d.web_port(bench)}") for d in DOMAINS.values()},
            "suppression": (("suppression", "serve"), f"{host}:{bench.suppression_port}"),
        }
        os.makedirs(log_dir, exist_ok=True)
        processes: dict[str, asyncio.subprocess.Process] = {}
        try:
            for name, (args, url) in services.items():
                with open(os.path.join(log_dir, f"{name}.log"), "wb") as log:
                    processes[name] = await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "samtykke.cli", *args, env=env, stdout=log, stderr=log
                    )
                # the consent service creates the topics' schemas; start the rest once it answers
                await _wait_ready(name, processes[name], url, timeout=120)
            yield RunningPlatform(
                bench,
                services["consent"][1],
                services["suppression"][1],
                {name: p.pid for name, p in processes.items()},
            )
        finally:
            for process in processes.values():
                if process.returncode is None:
                    process.terminate()
            for process in processes.values():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(process.wait(), timeout=20)
                if process.returncode is None:
                    process.kill()
                    await process.wait()
