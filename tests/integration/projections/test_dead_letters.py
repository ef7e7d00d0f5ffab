"""Poison messages (undecodable, rule violation) land in `<group>.dlq` with their reason in headers,
and the projector goes on: a later event on the same partition still applies. A schema id the
registry does not know is not poison: it holds the projector back (retried), nothing skipped."""

from __future__ import annotations

import asyncio
import struct
import time
from datetime import UTC, datetime, timedelta

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from samtykke.adapters import dead_letters
from samtykke.adapters.avro import AvroEncoder, SchemaRegistry, load_schema
from samtykke.adapters.dead_letters import dead_letter_topic
from samtykke.adapters.kafka import KafkaOptions, client_options
from samtykke.domain.events import ConsentChanged
from samtykke.projections.domains import DOMAINS

from .conftest import ProjectionPlatform
from .history import register


async def read_dead_letters(
    kafka: KafkaOptions, topic: str, count: int, timeout: float = 30
) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(topic, **kafka, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        found: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                found += records
        return found
    finally:
        await consumer.stop()


def decision(action: str) -> dict[str, object]:
    return {
        "decisions": [{"purpose": "direct_marketing", "channel": "sms", "action": action}],
        "source": "self_service",
        "actor": {"kind": "subject"},
    }


async def test_poison_goes_to_the_dead_letter_queue_and_later_events_apply(platform: ProjectionPlatform) -> None:
    [projector] = await platform.start("marketing")
    settings, client = platform.settings, platform.consent.client
    subject = await register(client, "consumer", "DK", None)
    assert (await client.post(f"/v1/subjects/{subject.subject_id}/consents", json=decision("grant"))).status_code == 201
    await platform.caught_up("marketing")

    registry = SchemaRegistry(settings.registry_url)
    encoder = AvroEncoder(registry, settings.topic_changes, load_schema(settings.schema_dir, "ConsentChanged"))
    await encoder.register()
    await registry.aclose()
    conn = await platform.owner()
    row = await conn.fetchrow("SELECT * FROM consent.ledger LIMIT 1")
    bogus = ConsentChanged(
        event_id=str(row["event_id"]),
        subject_id=subject.subject_id,
        subject_kind="consumer",
        account_id=None,
        country="DK",
        purpose="direct_marketing",
        channel="sms",
        status="bogus",
        previous_status="granted",
        version=2,
        occurred_at=row["occurred_at"],
        recorded_at=row["recorded_at"],
        valid_until=None,
        source="self_service",
        actor_kind="subject",
        notice_version=None,
        evidence_ref=None,
        correlation_id=None,
    )
    poison = {
        b"not avro at all": "undecodable",
        encoder.encode(bogus.as_record()): "rule_violation",
    }
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:
        for value in poison:  # keyed by the subject: the same partition as its real events
            await producer.send_and_wait(
                settings.topic_changes, value, key=subject.subject_id.encode(), headers=[("origin", b"test")]
            )
    finally:
        await producer.stop()
    assert (
        await client.post(f"/v1/subjects/{subject.subject_id}/consents", json=decision("withdraw"))
    ).status_code == 201
    await platform.caught_up("marketing")

    status = await conn.fetchval("SELECT status FROM marketing.consents WHERE subject_id = $1", subject.subject_id)
    await conn.close()
    assert status == "withdrawn"  # the event after the poison was applied
    topic = dead_letter_topic(DOMAINS["marketing"].group(settings))
    letters = await read_dead_letters(client_options(settings), topic, len(poison))
    assert len(letters) == len(poison)
    group = DOMAINS["marketing"].group(settings)
    for letter in letters:
        headers = {k: v.decode() for k, v in letter.headers}
        assert [k for k, _ in letter.headers] == [*dead_letters.HEADERS, "origin"]  # theirs after ours
        assert letter.value in poison and headers[dead_letters.REASON_KIND] == poison[letter.value]
        assert headers[dead_letters.SOURCE_TOPIC] == settings.topic_changes and headers["origin"] == "test"
        assert int(headers[dead_letters.SOURCE_OFFSET]) >= 1 and int(headers[dead_letters.SOURCE_PARTITION]) >= 0
        assert headers[dead_letters.CONSUMER] == group
        assert abs(datetime.fromisoformat(headers[dead_letters.DEAD_LETTERED_AT]) - datetime.now(UTC)) < timedelta(
            minutes=1
        )
        assert letter.key == subject.subject_id.encode()
    details = {dict(letter.headers)[dead_letters.REASON_DETAIL].decode() for letter in letters}
    assert "unknown status 'bogus'" in details
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{projector.url}/metrics")).text
    assert 'samtykke_projection_dead_letters_total{domain="marketing",reason="rule_violation"} 1.0' in metrics


async def test_an_unknown_schema_id_holds_the_projector_back_and_is_never_dead_lettered(
    platform: ProjectionPlatform,
) -> None:
    [projector] = await platform.start("marketing")
    settings, client = platform.settings, platform.consent.client
    subject = await register(client, "consumer", "DK", None)
    assert (await client.post(f"/v1/subjects/{subject.subject_id}/consents", json=decision("grant"))).status_code == 201
    await platform.caught_up("marketing")
    # framed with an id no registry has handed out (a registry restarted empty, say)
    unknown = b"\x00" + struct.pack(">I", 2**31 - 1) + b"\x02"
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic_changes, unknown, key=subject.subject_id.encode())
    finally:
        await producer.stop()
    assert (
        await client.post(f"/v1/subjects/{subject.subject_id}/consents", json=decision("withdraw"))
    ).status_code == 201
    await platform.consent.wait_outbox_empty()
    await asyncio.sleep(5.0)  # retried with backoff meanwhile, never skipped
    conn = await platform.owner()
    try:
        status = await conn.fetchval("SELECT status FROM marketing.consents WHERE subject_id = $1", subject.subject_id)
    finally:
        await conn.close()
    assert status == "granted"  # held back behind the record it cannot read yet: stale, not wrong
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{projector.url}/metrics")).text
    assert 'samtykke_projection_retries_total{domain="marketing",stage="decode"}' in metrics
    assert "samtykke_projection_dead_letters_total{" not in metrics
    topic = dead_letter_topic(DOMAINS["marketing"].group(settings))
    assert await read_dead_letters(client_options(settings), topic, 1, timeout=2) == []
