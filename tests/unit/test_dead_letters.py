"""The one dead-letter contract: every consumer's dead letter is the record as consumed plus the
same headers, in the same order, its own CloudEvents headers among them (pure: the record is built,
never sent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from samtykke import docs
from samtykke.adapters import cloudevents, dead_letters
from samtykke.adapters.avro import UndecodableMessage
from samtykke.adapters.dead_letters import PoisonKind, dead_letter, dead_letter_topic, undecodable_kind
from samtykke.projections.dead_letters import DeadLetterQueue
from samtykke.projections.messages import PoisonMessage, RawMessage
from samtykke.suppression import feed

AT = datetime(2026, 6, 1, 14, 30, 5, 250_000, tzinfo=timezone(timedelta(hours=2)))
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
RECORD = RawMessage(
    "consent.changes",
    4,
    1234,
    b"subject-key",
    b"\x00not avro",
    (("traceparent", f"00-{TRACE}-00f067aa0ba902b7-01".encode()), ("ce_id", b"event-1"), ("origin", b"crm")),
)


def test_a_dead_letter_keeps_the_record_and_names_why_where_who_and_when() -> None:
    letter = dead_letter(RECORD, PoisonKind.RULE_VIOLATION, "unknown status 'bogus'", "samtykke.marketing", AT)
    assert (letter.key, letter.value) == (RECORD.key, RECORD.value)
    assert letter.headers == [
        ("reason_kind", b"rule_violation"),
        ("reason_detail", b"unknown status 'bogus'"),
        ("source_topic", b"consent.changes"),
        ("source_partition", b"4"),
        ("source_offset", b"1234"),
        ("consumer", b"samtykke.marketing"),
        ("dead_lettered_at", b"2026-06-01T12:30:05.250+00:00"),  # in UTC, whatever zone it was given in
        ("ce_specversion", b"1.0"),
        ("ce_id", dict(letter.headers)["ce_id"]),
        ("ce_source", b"/samtykke/consumers/samtykke.marketing"),
        ("ce_type", b"dk.samtykke.dead_letter.v1"),
        ("ce_time", b"2026-06-01T12:30:05.250Z"),
        ("content-type", b"application/octet-stream"),
        ("traceparent", dict(letter.headers)["traceparent"]),
        # the record's own headers follow, those named like ours renamed
        ("source_traceparent", f"00-{TRACE}-00f067aa0ba902b7-01".encode()),
        ("source_ce_id", b"event-1"),
        ("origin", b"crm"),
    ]
    assert [name for name, _ in letter.headers[: len(dead_letters.HEADERS)]] == list(dead_letters.HEADERS)


def test_a_dead_letter_continues_the_records_trace_and_keeps_its_id_when_sent_again() -> None:
    letter = dict(dead_letter(RECORD, PoisonKind.UNDECODABLE, "x", "suppression", AT).headers)
    again = dict(dead_letter(RECORD, PoisonKind.UNDECODABLE, "x", "suppression", datetime.now(UTC)).headers)
    trace = cloudevents.TraceParent.parse(letter["traceparent"])
    assert trace is not None and trace.trace_id == TRACE and trace.span_id != "00f067aa0ba902b7"
    assert letter["ce_id"] == again["ce_id"]  # one record, one consumer: one dead-letter event
    other = dict(dead_letter(RECORD, PoisonKind.UNDECODABLE, "x", "samtykke.marketing", AT).headers)
    assert other["ce_id"] != letter["ce_id"]


def test_a_record_without_trace_context_gets_a_new_trace() -> None:
    bare = RawMessage("consent.changes", 0, 7, None, None, ())
    headers = dead_letter(bare, PoisonKind.UNDECODABLE, "empty", "suppression", AT).headers
    assert [name for name, _ in headers] == list(dead_letters.HEADERS)
    assert cloudevents.TraceParent.parse(dict(headers)["traceparent"]) is not None


def test_the_detail_is_bounded() -> None:
    letter = dead_letter(RECORD, PoisonKind.UNDECODABLE, "x" * 1000, "suppression", datetime.now(UTC))
    assert dict(letter.headers)["reason_detail"] == b"x" * dead_letters.DETAIL_LIMIT


def test_an_unknown_schema_id_is_told_apart_from_bytes_that_are_not_avro() -> None:
    assert undecodable_kind(UndecodableMessage("unknown schema id 2147483647")) is PoisonKind.UNKNOWN_SCHEMA
    assert undecodable_kind(UndecodableMessage("not Confluent-framed Avro")) is PoisonKind.UNDECODABLE


def test_projectors_and_the_suppression_feed_document_and_send_one_contract() -> None:
    documented = list(docs.DEAD_LETTER_HEADERS)
    assert documented[: len(dead_letters.REASON_HEADERS)] == list(dead_letters.REASON_HEADERS)
    assert set(documented) <= set(dead_letters.HEADERS)
    assert docs.PROJECTOR_DLQ_HEADERS == docs.SUPPRESSION_DLQ_HEADERS == docs.DEAD_LETTER_HEADERS
    assert dead_letter_topic("samtykke.marketing") == "samtykke.marketing.dlq"
    assert feed.CONSUMER == "suppression"  # as the documented `consumer` header says
    assert "`suppression`" in docs.DEAD_LETTER_HEADERS[dead_letters.CONSUMER]


async def test_a_projector_dead_letters_to_its_group_topic_under_its_group() -> None:
    sent: list[tuple[str, bytes | None, bytes | None, dead_letters.Headers]] = []

    async def send(topic: str, key: bytes | None, value: bytes | None, headers: dead_letters.Headers) -> None:
        sent.append((topic, key, value, headers))

    queue = DeadLetterQueue("samtykke.analytics", send)
    await queue.put(RECORD, PoisonMessage(PoisonKind.UNDECODABLE, "truncated body"))
    [(topic, key, value, headers)] = sent
    assert (topic, key, value) == ("samtykke.analytics.dlq", RECORD.key, RECORD.value)
    assert dict(headers)["consumer"] == b"samtykke.analytics" and dict(headers)["reason_detail"] == b"truncated body"
