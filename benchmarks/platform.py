"""The whole platform as child processes on a fresh database and fresh topics, for benchmarks.

`bench_platform` (from the projections benchmark) creates the database, the topic pair and the
projector schemas and roles; this starts the consent service, the three projectors and the
suppression service on them, each as its own `samtykke` process as in production, on ports
beside the developer's own platform so both can run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.projections import bench_platform
from samtykke.adapters.settings import Settings
from samtykke.devstack.process import ServiceProcess, settings_environment
from samtykke.projections.domains import DOMAINS

# the settings a child process needs to land on the benchmark's database, topics and ports
CARRIED = (
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
        env = settings_environment(bench, CARRIED) | {
            "SAMTYKKE_SUPPRESSION_MAX_LAG_SECONDS": "30",
            "SAMTYKKE_SUPPRESSION_RATE_LIMIT_PER_MINUTE": "100000000",
        }
        host = "http://127.0.0.1"
        services = {
            "consent": (("consent", "serve"), f"{host}:{bench.consent_port}"),
            **{d.name: (("projections", "run", d.name), f"{host}:{d.web_port(bench)}") for d in DOMAINS.values()},
            "suppression": (("suppression", "serve"), f"{host}:{bench.suppression_port}"),
        }
        if not settings.consent_relay:  # the relay as a process of its own, as the platform runs it
            env |= {"SAMTYKKE_CONSENT_RELAY": "false", "SAMTYKKE_RELAY_PORT": str(bench.relay_port + 10)}
            services = {"relay": (("consent", "relay"), f"{host}:{bench.relay_port + 10}"), **services}
        logs = Path(log_dir)
        processes: dict[str, ServiceProcess] = {}
        try:
            for name, (args, url) in services.items():
                processes[name] = ServiceProcess(name, args, url, env, logs / f"{name}.log", 120)
                # the consent service creates the topics' schemas; start the rest once it answers
                await processes[name].spawn().ready()
            yield RunningPlatform(
                bench,
                services["consent"][1],
                services["suppression"][1],
                {name: p.pid for name, p in processes.items()},
            )
        finally:
            for process in processes.values():  # all at once: each takes seconds to shut down
                process.terminate()
            await asyncio.gather(*(process.stop() for process in processes.values()))
