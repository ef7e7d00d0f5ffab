"""What a test session leaves on the shared development stack, and removing it.

Tests make their own topics, registry subjects and databases so they never see each other's
data. The development broker, registry and PostgreSQL outlive the session, so whatever the
session added is removed when it ends; the platform's own topics (the settings' names) and
anything that was there before the session stay.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import quote

import asyncpg
import httpx
from aiokafka.admin import AIOKafkaAdminClient

from samtykke.adapters.kafka import KafkaOptions, client_options
from samtykke.adapters.settings import Settings
from samtykke.devstack.registry import STORAGE_DATABASE


@dataclass(frozen=True)
class StackContents:
    topics: frozenset[str]
    subjects: frozenset[str]
    databases: frozenset[str]


async def _topics(kafka: KafkaOptions) -> set[str]:
    admin = AIOKafkaAdminClient(**kafka)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def _subjects(registry_url: str) -> set[str]:
    response = httpx.get(f"{registry_url}/subjects", timeout=10)
    response.raise_for_status()
    return set(response.json())


async def _databases(database_url: str) -> set[str]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch("SELECT datname FROM pg_database WHERE NOT datistemplate")
        return {row["datname"] for row in rows}
    finally:
        await connection.close()


def contents(settings: Settings) -> StackContents:
    return StackContents(
        topics=frozenset(asyncio.run(_topics(client_options(settings)))),
        subjects=frozenset(_subjects(settings.registry_url)),
        databases=frozenset(asyncio.run(_databases(settings.database_url))),
    )


def platform_topics(settings: Settings) -> set[str]:
    """Topics the running platform owns: created by it, never by a test's own names."""
    domains = ("marketing", "analytics", "customer_service")
    return {
        settings.topic_changes,
        "consent.changes",  # the changes topic before it was keyed by the consent (`consent.changes.v2`)
        settings.topic_subjects,
        settings.topic_watermarks,
        settings.topic_registers,
        settings.suppression_dlq_topic,
        settings.topic_watermarks,
        settings.topic_registers,
        *(f"{settings.projection_group_prefix}.{domain}.dlq" for domain in domains),
    }


def remove_added(settings: Settings, before: StackContents) -> StackContents:
    """Delete what was added since `before`; returns what was removed."""
    now = contents(settings)
    keep = platform_topics(settings) | {f"{topic}-value" for topic in platform_topics(settings)}
    topics = {t for t in now.topics - before.topics if t not in keep and not t.startswith("_")}
    subjects = {s for s in now.subjects - before.subjects if s not in keep}
    # the registry's storage is the stack's own, even when a test's restart of the registry made it
    databases = set(now.databases - before.databases) - {STORAGE_DATABASE}
    if topics:
        asyncio.run(_delete_topics(client_options(settings), sorted(topics)))
    for subject in sorted(subjects):
        _delete_subject(settings.registry_url, subject)
    if databases:
        asyncio.run(_drop_databases(settings.database_url, sorted(databases)))
    return StackContents(frozenset(topics), frozenset(subjects), frozenset(databases))


async def _delete_topics(kafka: KafkaOptions, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(**kafka)
    await admin.start()
    try:
        for start in range(0, len(topics), 100):
            await admin.delete_topics(topics[start : start + 100])
    finally:
        await admin.close()


def _delete_subject(registry_url: str, subject: str) -> None:
    # soft delete first: the Confluent API refuses a permanent delete of a live subject
    url = f"{registry_url}/subjects/{quote(subject, safe='')}"
    httpx.delete(url, timeout=10)
    httpx.delete(url, params={"permanent": "true"}, timeout=10)


async def _drop_databases(database_url: str, names: list[str]) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        for name in names:
            with contextlib.suppress(asyncpg.PostgresError):
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()
