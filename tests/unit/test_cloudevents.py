"""The CloudEvents headers every producer sends (pure: built, never sent)."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from samtykke.adapters import cloudevents
from samtykke.adapters.cloudevents import EventType, Headers, TraceParent, cloud_event_headers
from samtykke.consent.ports import OutboxMessage
from samtykke.consent.relay import outbox_headers
from samtykke.domain.registers import Register, SnapshotHead
from samtykke.suppression.register_topic import RegisterPublisher

TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01")
AT = datetime(2026, 6, 1, 14, 30, 5, 250_999, tzinfo=timezone(timedelta(hours=2)))


def text(headers: list[tuple[str, bytes]]) -> dict[str, str]:
    return {name: value.decode() for name, value in headers}


def test_a_record_gets_every_attribute_in_order() -> None:
    event_id = str(uuid.uuid4())
    headers = cloud_event_headers(EventType.CONSENT_CHANGED, cloudevents.CONSENT_SERVICE, AT, event_id=event_id)
    assert [name for name, _ in headers] == list(cloudevents.HEADERS)
    values = text(headers)
    assert values["ce_specversion"] == "1.0" and values["ce_id"] == event_id
    assert values["ce_source"] == "/samtykke/consent-service"
    assert values["ce_type"] == "dk.samtykke.consent.changed.v1"
    assert values["ce_time"] == "2026-06-01T12:30:05.250Z"  # RFC 3339, UTC, milliseconds
    assert values["content-type"] == "application/avro; framing=confluent"
    assert TRACEPARENT.fullmatch(values["traceparent"])


def test_without_an_event_id_each_record_gets_a_fresh_uuid_and_a_new_trace() -> None:
    first, second = (text(cloud_event_headers(EventType.WATERMARK, "/x", AT)) for _ in range(2))
    assert uuid.UUID(first["ce_id"]) != uuid.UUID(second["ce_id"])
    assert first["traceparent"][3:35] != second["traceparent"][3:35]


def test_a_tombstone_has_no_content_type_and_a_given_trace_is_continued() -> None:
    trace = TraceParent.start()
    headers = text(
        cloud_event_headers(EventType.REGISTER_CHUNK_REMOVED, "/x", AT, content_type=None, trace=trace.child())
    )
    assert "content-type" not in headers
    continued = TraceParent.parse(headers["traceparent"])
    assert continued is not None and continued.trace_id == trace.trace_id and continued.span_id != trace.span_id


def test_a_naive_time_is_taken_as_utc() -> None:
    assert cloudevents.rfc3339(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000Z"


@given(st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999))
def test_an_instant_in_milliseconds_reads_as_its_datetime_does(millis: int) -> None:
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
    assert cloudevents.rfc3339(millis) == cloudevents.rfc3339(at)


@given(st.uuids())
def test_any_spelling_of_an_event_id_gives_the_same_trace(event_id: uuid.UUID) -> None:
    assume(event_id.int != 0)  # the nil id names no trace: a new one starts
    spellings = (str(event_id), str(event_id).upper(), f"{{{event_id}}}", event_id.urn, event_id.hex)
    assert {cloudevents.event_trace(s).trace_id for s in spellings} == {event_id.hex}


def test_traceparent_parsing_refuses_what_w3c_calls_invalid() -> None:
    valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert str(TraceParent.parse(valid)) == valid and str(TraceParent.parse(valid.encode())) == valid
    zero_trace, zero_span = f"00-{'0' * 32}-00f067aa0ba902b7-01", f"00-{'1' * 32}-{'0' * 16}-01"
    for bad in (None, "", "00-abc-01", valid.upper(), "01" + valid[2:], zero_trace, zero_span):
        assert TraceParent.parse(bad) is None, bad


@given(st.uuids(version=4))
def test_a_changes_trace_id_is_its_event_id(event_id: uuid.UUID) -> None:
    trace = cloudevents.event_trace(str(event_id))
    assert trace.trace_id == event_id.hex and TRACEPARENT.fullmatch(str(trace))


def test_an_outbox_row_is_an_event_with_its_own_id_and_time() -> None:
    event_id = str(uuid.uuid4())
    occurred = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    payload = {"event_id": event_id, "subject_id": str(uuid.uuid4()), "occurred_at": int(occurred.timestamp() * 1000)}
    message = OutboxMessage(1, "consent.changes", payload["subject_id"], "ConsentChanged", payload, AT)
    headers = text(outbox_headers(message))
    assert headers["ce_id"] == event_id and headers["ce_type"] == "dk.samtykke.consent.changed.v1"
    assert headers["ce_time"] == "2025-03-01T09:00:00.000Z"  # when it happened, not when it was queued
    assert headers["traceparent"][3:35] == uuid.UUID(event_id).hex
    subject = OutboxMessage(2, "consent.subjects", "k", "SubjectChanged", {"event_id": event_id}, AT)
    assert text(outbox_headers(subject))["ce_type"] == "dk.samtykke.subject.changed.v1"
    assert text(outbox_headers(subject))["ce_time"] == "2026-06-01T12:30:05.250Z"  # no occurred_at: queued


def test_no_header_carries_the_subject_or_anything_but_attributes() -> None:
    subject = str(uuid.uuid4())
    payload = {"event_id": str(uuid.uuid4()), "subject_id": subject, "occurred_at": 0}
    message = OutboxMessage(1, "consent.changes", subject, "ConsentChanged", payload, AT)
    headers = outbox_headers(message)
    assert [name for name, _ in headers] == list(cloudevents.HEADERS)
    assert all(subject.encode() not in value for _, value in headers)


async def test_a_register_publication_is_one_trace_of_cloud_events_tombstones_included() -> None:
    class Sent:
        def __init__(self) -> None:
            self.records: list[tuple[bytes | None, dict[str, str]]] = []

        async def send(self, topic: str, value: bytes | None, *, key: bytes, headers: Headers) -> Any:
            self.records.append((value, text(headers)))
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        async def send_and_wait(self, topic: str, value: bytes | None, *, key: bytes, headers: Headers) -> None:
            await (await self.send(topic, value, key=key, headers=headers))

    class Encoder:
        ready = True

        def encode(self, record: dict[str, Any]) -> bytes:
            return b"\x00avro"

    sent = Sent()
    publisher = RegisterPublisher({}, "consent.registers", Encoder())  # type: ignore[arg-type]
    publisher._producer = sent  # type: ignore[assignment]
    previous = SnapshotHead(Register.NIX, "old", date(2026, 1, 1), 1, 1, False)
    await publisher.publish(Register.NIX, date(2026, 6, 1), {"a" * 64, "b" * 64}, False, previous)
    types = [headers["ce_type"] for _, headers in sent.records]
    assert types == [
        "dk.samtykke.register.chunk.v1",
        "dk.samtykke.register.snapshot.v1",
        "dk.samtykke.register.chunk.removed.v1",
    ]
    assert {headers["traceparent"][3:35] for _, headers in sent.records} == {sent.records[0][1]["traceparent"][3:35]}
    assert len({headers["traceparent"][36:52] for _, headers in sent.records}) == 3  # one span each
    assert all(headers["ce_source"] == "/samtykke/suppression-service" for _, headers in sent.records)
    assert sent.records[2][0] is None and "content-type" not in sent.records[2][1]
    assert all("a" * 64 not in value for _, headers in sent.records for value in headers.values())
