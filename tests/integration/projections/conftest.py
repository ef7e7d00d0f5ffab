"""Fixtures for the projector tests: provisioned schemas and roles in the test's database, and
projectors run as real processes (`python -m samtykke.cli projections run DOMAIN`) on the
test's own topics, consumer groups and ports."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from samtykke.adapters.kafka import client_options, topic_partitions
from samtykke.adapters.settings import Settings
from samtykke.devstack.parts import StackError
from samtykke.devstack.process import ServiceProcess, settings_environment
from samtykke.projections.domains import DOMAINS
from samtykke.projections.provision import provision
from tests.ports import free_ports

from ..conftest import RunningConsent
from ..suppression.watermarks import WatermarkPublisher

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
    "topic_watermarks",
    "kafka_metadata_refresh_seconds",
)


def settings_env(settings: Settings) -> dict[str, str]:
    return settings_environment(settings, PROJECTOR_SETTINGS)


def free_port_base() -> int:
    """A base whose next three ports are free (each projector serves on base + 1, 2, 3)."""
    return free_ports(3) - 1


def projector_process(domain: str, settings: Settings, log_path: Path) -> ServiceProcess:
    """`samtykke projections run DOMAIN` on the test's settings; `kill()` is a crash (SIGKILL)."""
    url = f"http://127.0.0.1:{DOMAINS[domain].web_port(settings)}"
    return ServiceProcess(domain, ("projections", "run", domain), url, settings_env(settings), log_path)


@dataclass
class ProjectionPlatform:
    consent: RunningConsent
    settings: Settings
    log_dir: Path
    projectors: list[ServiceProcess] = field(default_factory=list)

    async def start(self, *domains: str) -> list[ServiceProcess]:
        started = [
            projector_process(d, self.settings, self.log_dir / f"{d}.log").spawn() for d in domains or tuple(DOMAINS)
        ]
        self.projectors += started
        try:
            await asyncio.gather(*(p.ready() for p in started))
        except StackError as error:
            raise AssertionError("\n".join([str(error), *error.log_tail(30)])) from error
        return started

    async def stop(self, projectors: list[ServiceProcess]) -> None:
        # all at once (SIGTERM: Faust leaves its group at once): each takes seconds to shut down
        await asyncio.gather(*(projector.stop(timeout=30) for projector in projectors))

    async def owner(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.settings.database_url)

    async def end_offsets(self) -> dict[tuple[str, int], int]:
        kafka, topics = client_options(self.settings), [self.settings.topic_changes, self.settings.topic_subjects]
        partitions = await topic_partitions(kafka, topics)
        consumer = AIOKafkaConsumer(**kafka, enable_auto_commit=False)
        await consumer.start()
        try:
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
            "kafka_metadata_refresh_seconds": 2.0,
        }
    )
    await provision(settings)
    running = ProjectionPlatform(consent, settings, tmp_path)
    try:
        yield running
    finally:
        await running.stop(running.projectors)


@pytest.fixture
async def watermarks(platform: ProjectionPlatform) -> AsyncIterator[WatermarkPublisher]:
    """Watermarks of the test's topics every 0.2 s on a topic of their own, which the projectors the
    test starts afterwards read instead of the relay's: the test controls every watermark."""
    publisher = await WatermarkPublisher(platform.settings).start()
    platform.settings = platform.settings.model_copy(update={"topic_watermarks": publisher.topic})
    try:
        yield publisher
    finally:
        await publisher.stop()
