"""The dead-letter contract every consumer keeps: what it could not apply goes to `<consumer>.dlq`.

A dead letter is the record as consumed — key and value byte for byte, which may be empty or
not Avro at all — with these headers, in this order, then the record's own headers:

    reason_kind       why, one of `PoisonKind` (bounded: it may label a metric)
    reason_detail     the particular problem, at most 300 characters, never the record's content
    source_topic      where it was consumed from
    source_partition  (decimal)
    source_offset     (decimal)
    consumer          who gave up on it: a projector's consumer group, or the suppression service
    dead_lettered_at  when, ISO 8601 in UTC

    ce_specversion, ce_id, ce_source, ce_type, ce_time, content-type, traceparent
                      the dead letter's own CloudEvents headers (`adapters.cloudevents`): type
                      `dk.samtykke.dead_letter.v1`, source `/samtykke/consumers/<consumer>`, an id
                      derived from (consumer, topic, partition, offset) so a re-sent dead letter
                      keeps it, time = dead_lettered_at, content-type `application/octet-stream`
                      (the bytes are whatever was consumed), and a traceparent that continues the
                      record's trace (a new span) or starts one when the record had none

A record header whose name is one of these follows renamed `source_<name>` (`source_ce_id`,
`source_traceparent`, ...), so each name appears once and the record's own attributes survive.

The projectors and the suppression feed both build their dead letters here; the AsyncAPI
document describes these headers by these names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from . import cloudevents

if TYPE_CHECKING:  # the AsyncAPI generator reads the header names without loading the codec
    from .avro import UndecodableMessage

REASON_KIND = "reason_kind"
REASON_DETAIL = "reason_detail"
SOURCE_TOPIC = "source_topic"
SOURCE_PARTITION = "source_partition"
SOURCE_OFFSET = "source_offset"
CONSUMER = "consumer"
DEAD_LETTERED_AT = "dead_lettered_at"
# why, where from, who and when: the reason part of the contract
REASON_HEADERS = (
    REASON_KIND,
    REASON_DETAIL,
    SOURCE_TOPIC,
    SOURCE_PARTITION,
    SOURCE_OFFSET,
    CONSUMER,
    DEAD_LETTERED_AT,
)
# every header a dead letter starts with, in order
HEADERS = (*REASON_HEADERS, *cloudevents.HEADERS)
RENAMED_PREFIX = "source_"
DETAIL_LIMIT = 300

Headers = list[tuple[str, bytes]]


class PoisonKind(StrEnum):
    """Why a message cannot be applied; a bounded set, so it can label a metric."""

    UNDECODABLE = "undecodable"
    UNKNOWN_SCHEMA = "unknown_schema"
    RULE_VIOLATION = "rule_violation"
    UNEXPECTED_TOPIC = "unexpected_topic"


class ConsumedRecord(Protocol):
    """What a dead letter needs of a consumed record (aiokafka's `ConsumerRecord` has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record ready to send to a dead-letter topic."""

    key: bytes | None
    value: bytes | None
    headers: Headers


def dead_letter_topic(group: str) -> str:
    return f"{group}.dlq"


def undecodable_kind(error: UndecodableMessage) -> PoisonKind:
    """Bytes we could not read: framed with a schema id the registry does not know, or not at all."""
    return PoisonKind.UNKNOWN_SCHEMA if "unknown schema id" in str(error) else PoisonKind.UNDECODABLE


def dead_letter(record: ConsumedRecord, kind: PoisonKind, detail: str, consumer: str, at: datetime) -> DeadLetter:
    """The dead letter of `record`, which `consumer` could not apply at `at` (an aware datetime)."""
    own = {str(name): bytes(value or b"") for name, value in record.headers}
    previous = cloudevents.TraceParent.parse(own.get(cloudevents.TRACEPARENT))
    event = cloudevents.cloud_event_headers(
        cloudevents.EventType.DEAD_LETTER,
        cloudevents.consumer_source(consumer),
        at,
        event_id=cloudevents.dead_letter_id(consumer, record.topic, record.partition, record.offset),
        content_type=cloudevents.OCTET_STREAM,
        trace=previous.child() if previous is not None else None,
    )
    headers: Headers = [
        (REASON_KIND, kind.value.encode()),
        (REASON_DETAIL, detail[:DETAIL_LIMIT].encode()),
        (SOURCE_TOPIC, record.topic.encode()),
        (SOURCE_PARTITION, str(record.partition).encode()),
        (SOURCE_OFFSET, str(record.offset).encode()),
        (CONSUMER, consumer.encode()),
        (DEAD_LETTERED_AT, at.astimezone(UTC).isoformat(timespec="milliseconds").encode()),
        *event,
        *((_renamed(str(name)), bytes(value or b"")) for name, value in record.headers),
    ]
    return DeadLetter(record.key, record.value, headers)


def _renamed(name: str) -> str:
    return RENAMED_PREFIX + name if name in HEADERS else name
