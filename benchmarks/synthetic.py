"""Synthetic contract events for the benchmark: valid, versioned per (subject, purpose, channel),
produced as Avro straight to a topic pair (not through the consent API)."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer

from samtykke.adapters.avro import AvroEncoder, SchemaRegistry, load_schema
from samtykke.adapters.kafka import client_options
from samtykke.adapters.settings import Settings
from samtykke.domain.catalog import load_catalog
from samtykke.domain.consent_keys import consent_key, subject_partition
from samtykke.domain.events import ConsentChanged, SubjectChanged
from samtykke.domain.model import SubjectKind

CATALOG = load_catalog()
KINDS = {
    "consumer": [
        (p.code, c.value if c else None)
        for p in CATALOG.purposes.values()
        if p.decidable and p.applies_to(SubjectKind.CONSUMER)
        for c in (p.channels[SubjectKind.CONSUMER] or [None])
    ]
}
STATUSES = ("granted", "withdrawn", "revoked")


class SyntheticHistory:
    """Consumers with random decisions; remembers versions so later events continue each key."""

    def __init__(self, seed: int = 7) -> None:
        self._rng = random.Random(seed)
        self.subjects: list[str] = []
        self._versions: dict[tuple[str, str, str | None], tuple[int, str]] = {}

    def subject(self) -> SubjectChanged:
        subject_id = str(uuid.UUID(int=self._rng.getrandbits(128)))
        self.subjects.append(subject_id)
        return SubjectChanged(
            event_id=str(uuid.uuid4()),
            subject_id=subject_id,
            kind="consumer",
            country=self._rng.choice(("DK", "SE", "NO")),
            account_id=None,
            phone_hash=None,
            email_hash=None,
            national_id_hash=None,
            erased=False,
            version=1,
            occurred_at=datetime.now(UTC),
        )

    def change(self, subject_id: str | None = None) -> ConsentChanged:
        purpose, channel = self._rng.choice(KINDS["consumer"])
        return self.change_of(subject_id or self._rng.choice(self.subjects), purpose, channel)

    def change_of(self, subject_id: str, purpose: str, channel: str | None) -> ConsentChanged:
        """The next change of one consent (its version continues the consent's last)."""
        version, previous = self._versions.get((subject_id, purpose, channel), (0, None))
        status = self._rng.choice(STATUSES)
        self._versions[(subject_id, purpose, channel)] = (version + 1, status)
        now = datetime.now(UTC)
        catalogued = CATALOG.get(purpose)
        lapse = catalogued.lapse_days if catalogued else None
        return ConsentChanged(
            event_id=str(uuid.uuid4()),
            subject_id=subject_id,
            subject_kind="consumer",
            account_id=None,
            country="DK",
            purpose=purpose,
            channel=channel,
            status=status,
            previous_status=previous,
            version=version + 1,
            occurred_at=now,
            recorded_at=now,
            valid_until=now + timedelta(days=lapse) if status == "granted" and lapse else None,
            source="app",
            actor_kind="subject",
            notice_version="bench-1",
            evidence_ref=None,
            correlation_id=None,
        )


class SyntheticProducer:
    def __init__(self, settings: Settings, linger_ms: int) -> None:
        self._settings = settings
        self._registry = SchemaRegistry.from_settings(settings)
        self.changes = AvroEncoder(
            self._registry, settings.topic_changes, load_schema(settings.schema_dir, "ConsentChanged")
        )
        self.subjects = AvroEncoder(
            self._registry, settings.topic_subjects, load_schema(settings.schema_dir, "SubjectChanged")
        )
        self._producer = AIOKafkaProducer(
            **client_options(settings),
            linger_ms=linger_ms,
            max_batch_size=512 * 1024,
            acks="all",
            enable_idempotence=True,
        )
        self._pending: list[asyncio.Future[object]] = []

    async def start(self) -> None:
        await self._producer.start()
        await self.changes.register()
        await self.subjects.register()

    async def stop(self) -> None:
        await self.flush()
        await self._producer.stop()
        await self._registry.aclose()

    async def send(self, event: ConsentChanged | SubjectChanged) -> None:
        encoder, topic = (
            (self.changes, self._settings.topic_changes)
            if isinstance(event, ConsentChanged)
            else (self.subjects, self._settings.topic_subjects)
        )
        # keyed and partitioned as the relay does: by consent, on its subject's partition
        key = (
            consent_key(event.subject_id, event.purpose, event.channel)
            if isinstance(event, ConsentChanged)
            else event.subject_id
        )
        partition = subject_partition(key, self._settings.topic_partitions)
        value = encoder.encode(event.as_record())
        self._pending.append(await self._producer.send(topic, value, key=key.encode(), partition=partition))
        if len(self._pending) >= 5000:
            await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending)
