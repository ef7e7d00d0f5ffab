"""CloudEvents headers on the real broker: every record the consent service writes carries them, with
the decoded event's id and time, a valid traceparent and no personal identifier; a projector's dead
letter of such a record carries its own and keeps the record's as `source_*`."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer

from samtykke.adapters import cloudevents, dead_letters
from samtykke.adapters.kafka import assign_all, client_options, ensure_topic, idempotent_producer
from samtykke.adapters.settings import Settings
from samtykke.projections.dead_letters import DeadLetterQueue
from samtykke.projections.messages import PoisonKind, PoisonMessage, RawMessage

from .conftest import RunningConsent
from .test_consent_service import CLEAR, CONSUMER, batch, register
from .test_consent_service import consent_server as consent_server  # watermarks on the test's own topic
from .topic_reader import RawMessage as Framed
from .topic_reader import decode_all

TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01")


async def read_with_headers(settings: Settings, topic: str, count: int, timeout: float = 60) -> list[Any]:
    """Every record of `topic` from the beginning, as aiokafka consumed it (headers included)."""
    kafka = client_options(settings)
    consumer = AIOKafkaConsumer(**kafka, enable_auto_commit=False)
    await consumer.start()
    try:
        await assign_all(consumer, kafka, [topic], "beginning", wait_seconds=timeout)
        found: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            found += [m for ms in (await consumer.getmany(timeout_ms=300)).values() for m in ms]
        return found
    finally:
        await consumer.stop()


async def decoded(settings: Settings, records: list[Any]) -> list[dict[str, Any]]:
    framed = [Framed(r.partition, r.offset, r.key, r.value) for r in records]
    return await decode_all(settings.registry_url, framed)


def ce(record: Any) -> dict[str, str]:
    names = [name for name, _ in record.headers]
    assert names == list(cloudevents.HEADERS), names
    return {name: value.decode() for name, value in record.headers}


async def test_every_record_of_the_consent_service_is_a_cloud_event_without_personal_data(
    consent: RunningConsent,
) -> None:
    subject = await register(consent)
    grant = batch(("direct_marketing", "sms", "grant"), ("direct_marketing", "email", "grant"))
    assert (await consent.client.post(f"/v1/subjects/{subject}/consents", json=grant)).status_code == 201
    withdraw = batch(("direct_marketing", "sms", "withdraw"))
    assert (await consent.client.post(f"/v1/subjects/{subject}/consents", json=withdraw)).status_code == 201
    await consent.wait_outbox_empty()
    settings = consent.settings

    changes = await read_with_headers(settings, settings.topic_changes, 3)
    subjects = await read_with_headers(settings, settings.topic_subjects, 1)
    watermarks = await read_with_headers(settings, settings.topic_watermarks, 2)
    assert (len(changes), len(subjects)) == (3, 1) and len(watermarks) >= 2
    identifier_hashes: set[str] = set()
    for records, event_type in (
        (changes, "dk.samtykke.consent.changed.v1"),
        (subjects, "dk.samtykke.subject.changed.v1"),
    ):
        for record, event in zip(records, await decoded(settings, records), strict=True):
            headers = ce(record)
            assert headers["ce_specversion"] == "1.0" and headers["ce_type"] == event_type
            assert headers["ce_source"] == "/samtykke/consent-service"
            assert headers["ce_id"] == str(event["event_id"])
            assert headers["ce_time"] == cloudevents.rfc3339(event["occurred_at"])
            assert headers["content-type"] == "application/avro; framing=confluent" and record.value[0] == 0
            trace = TRACEPARENT.fullmatch(headers["traceparent"])
            assert trace is not None and trace[1] == uuid.UUID(headers["ce_id"]).hex
            identifier_hashes |= {event.get(f"{kind}_hash") or "" for kind in ("phone", "email", "national_id")}
    identifier_hashes.discard("")
    assert len(identifier_hashes) == 3  # the subject's hashes are on the topic, in the value only
    ids = set()
    for record in watermarks:
        headers = ce(record)
        assert headers["ce_type"] == "dk.samtykke.consent.watermark.v1" and TRACEPARENT.fullmatch(
            headers["traceparent"]
        )
        ids.add(uuid.UUID(headers["ce_id"]))
        assert abs((datetime.fromisoformat(headers["ce_time"]) - datetime.now(UTC)).total_seconds()) < 120
    assert len(ids) == len(watermarks)

    forbidden = {*CLEAR, *CONSUMER["identifiers"].values(), *identifier_hashes}
    for record in [*changes, *subjects, *watermarks]:
        for name, value in record.headers:
            text = value.decode()
            assert not any(item.lower() in text.lower() for item in forbidden), (name, text)
            assert subject not in text  # not even the pseudonymous id: that is the key's job


async def test_a_projectors_dead_letter_is_a_cloud_event_that_continues_the_records_trace(
    consent: RunningConsent,
) -> None:
    subject = await register(consent)
    await consent.wait_outbox_empty()
    settings = consent.settings
    [consumed] = await read_with_headers(settings, settings.topic_subjects, 1)
    original = ce(consumed)
    group = f"{settings.topic_changes}.deadletters-test"
    queue_topic = dead_letters.dead_letter_topic(group)
    kafka = client_options(settings)
    await ensure_topic(kafka, queue_topic, 1, {})
    producer = idempotent_producer(kafka)
    await producer.start()
    try:

        async def send(topic: str, key: bytes | None, value: bytes | None, headers: dead_letters.Headers) -> None:
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)

        message = RawMessage(
            consumed.topic, consumed.partition, consumed.offset, consumed.key, consumed.value, tuple(consumed.headers)
        )
        await DeadLetterQueue(group, send).put(message, PoisonMessage(PoisonKind.RULE_VIOLATION, "test"))
    finally:
        await producer.stop()

    [letter] = await read_with_headers(settings, queue_topic, 1)
    names = [name for name, _ in letter.headers]
    assert names == [*dead_letters.HEADERS, *(f"source_{name}" for name in cloudevents.HEADERS)]
    headers = {name: value.decode() for name, value in letter.headers}
    assert headers["ce_type"] == "dk.samtykke.dead_letter.v1" and headers["ce_source"] == f"/samtykke/consumers/{group}"
    assert headers["content-type"] == "application/octet-stream" and headers["ce_specversion"] == "1.0"
    assert headers["ce_id"] != original["ce_id"] and uuid.UUID(headers["ce_id"])
    assert headers["ce_time"] == cloudevents.rfc3339(datetime.fromisoformat(headers["dead_lettered_at"]))
    ours, theirs = TRACEPARENT.fullmatch(headers["traceparent"]), TRACEPARENT.fullmatch(original["traceparent"])
    assert ours is not None and theirs is not None and ours[1] == theirs[1] and ours[2] != theirs[2]
    assert all(headers[f"source_{name}"] == original[name] for name in cloudevents.HEADERS)
    assert (letter.key, letter.value) == (subject.encode(), consumed.value)
