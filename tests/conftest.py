"""Shared fixtures: the real stack (Kafka, schema registry, PostgreSQL) and per-test isolation.

By default the stack is the local one managed by `samtykke.devstack` (started
once per session and left running, so the next run starts in a second). With
SAMTYKKE_TEST_STACK=testcontainers the same three servers come from Docker
containers instead. Either way every test gets its own database and topic
names, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from samtykke.adapters.kafka import client_options
from samtykke.adapters.settings import Settings, get_settings
from tests import leftovers

# the one environment switch the tests read: where the stack comes from
STACK_SOURCE = os.environ.get("SAMTYKKE_TEST_STACK", "local")
if STACK_SOURCE == "testcontainers":
    # the containers' Kafka listens in plaintext; the settings' default is the local stack's SASL_SSL
    os.environ.setdefault("SAMTYKKE_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")

# Apache Kafka 4.1 in Confluent's image: testcontainers' KafkaContainer drives that
# image's start scripts, so the plain apache/kafka image does not fit it
KAFKA_IMAGE = "confluentinc/cp-kafka:8.1.0"
POSTGRES_IMAGE = "postgres:15"
REGISTRY_IMAGE = "apicurio/apicurio-registry:3.0.9"
CCOMPAT_PATH = "/apis/ccompat/v7"


@dataclass(frozen=True)
class StackEndpoints:
    kafka_bootstrap: str
    registry_url: str
    database_url: str  # the owner/admin login: may create databases and roles

    @property
    def kafka(self) -> dict[str, Any]:
        """aiokafka options for this broker with the settings' security (the local stack's `tools`
        user over SASL_SSL unless SAMTYKKE_KAFKA_* say otherwise)."""
        return client_options(get_settings().model_copy(update={"kafka_bootstrap": self.kafka_bootstrap}))


@dataclass(frozen=True)
class TopicNames:
    changes: str
    subjects: str

    def __getitem__(self, key: str) -> str:
        # dict-style access for code that takes a mapping of topic names
        value: str = getattr(self, key)
        return value


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # `-m "not stack"` must skip every test that needs the servers
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def stack() -> Iterator[StackEndpoints]:
    if STACK_SOURCE == "testcontainers":
        yield from containers_stack()
        return
    from samtykke import devstack

    settings = get_settings()
    devstack.up(settings)
    before = leftovers.contents(settings)
    yield StackEndpoints(settings.kafka_bootstrap, settings.registry_url, settings.database_url)
    # the development stack outlives the session: take away what the tests made
    try:
        removed = leftovers.remove_added(settings, before)
    except Exception as error:  # a stack stopped by the last test: report, the results stand
        print(f"\ncould not remove what the tests made: {type(error).__name__}: {error}")
        return
    print(
        f"\nremoved what the tests made: {len(removed.topics)} topics, {len(removed.subjects)} registry subjects, "
        f"{len(removed.databases)} databases"
    )


@pytest.fixture(scope="session")
def local_stack(stack: StackEndpoints) -> StackEndpoints:
    """For tests of the local stack manager itself; containers have no manager."""
    if STACK_SOURCE != "local":
        # only the outage and stack-manager tests need this: they stop and start the broker
        # process through samtykke.devstack, which a testcontainers run does not have
        pytest.skip("needs the local stack manager (SAMTYKKE_TEST_STACK=testcontainers has none)")
    return stack


@pytest.fixture(scope="session")
def stack_settings(stack: StackEndpoints) -> Settings:
    """Settings pointing at the stack in use, for code under test that takes a Settings."""
    return get_settings().model_copy(
        update={
            "kafka_bootstrap": stack.kafka_bootstrap,
            "registry_url": stack.registry_url,
            "database_url": stack.database_url,
        }
    )


@pytest.fixture
async def fresh_database(stack: StackEndpoints) -> AsyncIterator[str]:
    """A new empty database owned by the stack's user; its URL. Dropped afterwards."""
    name = f"t_{uuid.uuid4().hex}"
    admin = await asyncpg.connect(stack.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')  # owner: the connected (stack) user
    finally:
        await admin.close()
    try:
        yield urlsplit(stack.database_url)._replace(path=f"/{name}").geturl()
    finally:
        await drop_database(stack.database_url, name)


async def drop_database(owner_url: str, name: str, patience: float = 20.0) -> None:
    """Drop a test's database. FORCE ends the test's own leaked connections, but the owner login may
    not end another role's (a projector process still stopping): those are waited for; a database
    still held after `patience` is left for the session's clean-up, with a warning."""
    deadline = time.monotonic() + patience
    admin = await asyncpg.connect(owner_url)
    try:
        while True:
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                return
            except asyncpg.InsufficientPrivilegeError:
                if time.monotonic() > deadline:
                    warnings.warn(f"database {name} still in use by another role; left for the clean-up", stacklevel=1)
                    return
                await asyncio.sleep(0.5)
    finally:
        await admin.close()


@pytest.fixture
def topic_names() -> TopicNames:
    prefix = f"t{uuid.uuid4().hex}"
    return TopicNames(changes=f"{prefix}.consent.changes", subjects=f"{prefix}.consent.subjects")


def containers_stack() -> Iterator[StackEndpoints]:
    """Kafka (KRaft), PostgreSQL 15 and Apicurio in Docker, through testcontainers 4.x."""
    from testcontainers.core.container import DockerContainer

    try:  # newer 4.x releases keep the modules under `community` (old paths are deprecated)
        from testcontainers.community.kafka import KafkaContainer
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:
        from testcontainers.kafka import KafkaContainer  # type: ignore[no-redef,unused-ignore]
        from testcontainers.postgres import (  # type: ignore[no-redef,unused-ignore]
            PostgresContainer,
        )

    kafka = KafkaContainer(KAFKA_IMAGE).with_kraft()
    postgres = PostgresContainer(
        POSTGRES_IMAGE, username="samtykke", password="samtykke", dbname="samtykke", driver=None
    )
    registry = DockerContainer(REGISTRY_IMAGE).with_exposed_ports(8080)
    started: list[DockerContainer] = []
    try:
        for container in (kafka, postgres, registry):
            container.start()
            started.append(container)
        registry_host = registry.get_container_host_ip()
        registry_base = f"http://{registry_host}:{registry.get_exposed_port(8080)}"
        wait_for_http_ok(f"{registry_base}/health/ready", timeout=120)
        yield StackEndpoints(
            kafka_bootstrap=kafka.get_bootstrap_server(),
            registry_url=f"{registry_base}{CCOMPAT_PATH}",
            database_url=postgres.get_connection_url(),
        )
    finally:
        for container in reversed(started):
            container.stop()


def wait_for_http_ok(url: str, timeout: float) -> None:
    # polled here rather than with a wait strategy: those differ across testcontainers 4.x
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f}s")
