"""Fixtures for the projector tests: provisioned schemas and roles in the test's database, and
projectors run as real processes (`python -m samtykke.cli projections run DOMAIN`) on the
test's own topics, consumer groups and ports."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from samtykke.adapters.settings import Settings
from samtykke.projections.domains import DOMAINS
from samtykke.projections.provision import provision

from ..conftest import RunningConsent

# the settings a projector process needs, passed as the environment it reads them from
PROJECTOR_SETTINGS = (
    "kafka_bootstrap",
    "registry_url",
    "database_url",
    "topic_changes",
    "topic_subjects",
    "topic_partitions",
    "projection_web_port_base",
    "projection_group_prefix",
    "projection_role_password",
    "analytics_pseudonym_key",
    "projection_batch_size",
)


def settings_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update({f"SAMTYKKE_{name.upper()}": str(getattr(settings, name)) for name in PROJECTOR_SETTINGS})
    return env


def free_port_base() -> int:
    """A base whose next three ports are free (each projector serves on base + 1, 2, 3)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1]) - 1
        try:
            for port in range(base + 1, base + 4):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port range")


@dataclass
class ProjectorProcess:
    domain: str
    settings: Settings
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{DOMAINS[self.domain].web_port(self.settings)}"

    def start(self) -> ProjectorProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "samtykke.cli", "projections", "run", self.domain],
            env=settings_env(self.settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return self

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                assert self.process is not None and self.process.poll() is None, self.log_tail()
                try:
                    if (await client.get(f"{self.url}/ready")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"{self.domain} projector not ready:\n{self.log_tail()}"
                await asyncio.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, a transaction in flight is simply lost."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM: Faust's graceful shutdown (the group is left at once, not after a timeout)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait(self) -> None:
        if self.process is not None:
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class ProjectionPlatform:
    consent: RunningConsent
    settings: Settings
    log_dir: Path
    projectors: list[ProjectorProcess] = field(default_factory=list)

    async def start(self, *domains: str) -> list[ProjectorProcess]:
        started = [
            ProjectorProcess(d, self.settings, self.log_dir / f"{d}.log").start() for d in domains or tuple(DOMAINS)
        ]
        self.projectors += started
        await asyncio.gather(*(p.ready() for p in started))
        return started

    def stop(self, projectors: list[ProjectorProcess]) -> None:
        for projector in projectors:  # all at once: each takes seconds to shut down
            projector.terminate()
        for projector in projectors:
            projector.wait()

    async def owner(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.settings.database_url)

    async def end_offsets(self) -> dict[tuple[str, int], int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = []
            for topic in (self.settings.topic_changes, self.settings.topic_subjects):
                await consumer._client.force_metadata_update()
                partitions += [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            ends = await consumer.end_offsets(partitions)
            return {(tp.topic, tp.partition): end for tp, end in ends.items()}
        finally:
            await consumer.stop()

    async def caught_up(self, *domains: str, timeout: float = 60) -> None:
        """Wait until the outbox is on Kafka and each domain stored the end of every partition."""
        await self.consent.wait_outbox_empty()
        ends = {tp: end for tp, end in (await self.end_offsets()).items() if end > 0}
        deadline = time.monotonic() + timeout
        conn = await self.owner()
        try:
            for domain in domains or tuple(DOMAINS):
                while True:
                    rows = await conn.fetch(f"SELECT topic, partition, last_offset FROM {domain}.consumer_offsets")
                    stored = {(r["topic"], r["partition"]): r["last_offset"] + 1 for r in rows}
                    behind = {tp: (stored.get(tp), end) for tp, end in ends.items() if stored.get(tp, 0) < end}
                    if not behind:
                        break
                    assert time.monotonic() < deadline, f"{domain} behind: {behind}"
                    await asyncio.sleep(0.2)
        finally:
            await conn.close()


@pytest.fixture
async def platform(consent: RunningConsent, tmp_path: Path) -> AsyncIterator[ProjectionPlatform]:
    settings = consent.settings.model_copy(
        update={
            "projection_web_port_base": free_port_base(),
            "projection_group_prefix": f"t{uuid.uuid4().hex[:12]}",
            "projection_batch_size": 200,
        }
    )
    await provision(settings)
    running = ProjectionPlatform(consent, settings, tmp_path)
    try:
        yield running
    finally:
        running.stop(running.projectors)
